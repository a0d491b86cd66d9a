from ninja import Router, Schema

from core.auth import ingest_auth
from core.schemas import responses

router = Router(tags=["ingest"], auth=ingest_auth)


class KeyInfoOut(Schema):
    id: int
    name: str
    scopes: list[str]


@router.get(
    "/whoami",
    response=responses({200: KeyInfoOut}),
    summary="Check an integration key",
    description="Answers which API key the request used and its scopes. Integrations call it to test setup.",
)
def whoami(request):
    key = request.auth
    return KeyInfoOut(id=key.pk, name=key.name, scopes=key.scopes)
