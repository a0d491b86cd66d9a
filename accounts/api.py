from django.shortcuts import get_object_or_404
from ninja import Router
from ninja.pagination import paginate

from accounts.models import ApiKey, Role
from accounts.schemas import ApiKeyCreatedOut, ApiKeyIn, ApiKeyOut
from accounts.services import api_key_create, api_key_revoke
from core.auth import require_role, user_auth
from core.idempotency import IdempotencyKeyHeader, run_idempotent
from core.pagination import Page
from core.schemas import describe, responses

router = Router(tags=["integrations"], auth=user_auth)


@router.get(
    "/api-keys",
    response=responses({200: list[ApiKeyOut]}),
    summary="List integration API keys",
    description=describe(
        "programme managers (role `programme_manager`).",
        "Keys with their prefix and scopes; secrets are never shown again after creation.",
    ),
)
@paginate(Page)
def list_api_keys(request):
    require_role(request, Role.PROGRAMME_MANAGER)
    return ApiKey.objects.order_by("id")


@router.post(
    "/api-keys",
    response=responses({201: ApiKeyCreatedOut}, 409),
    summary="Create an integration API key",
    description=describe(
        "programme managers (role `programme_manager`).",
        "The answer holds the secret once (send it as `X-API-Key`). An unknown scope is a 422. The secret is never "
        "stored: a retry with the same `Idempotency-Key` answers 409 `idempotency_secret_not_replayable` with "
        "`fields.id`, the key created (revoke it if its secret was lost).",
        errors={409: "`idempotency_secret_not_replayable`: a retry of a creation whose secret is not kept."},
    ),
)
def create_api_key(request, payload: ApiKeyIn, idempotency_key: str | None = IdempotencyKeyHeader):
    user = require_role(request, Role.PROGRAMME_MANAGER)

    def action():
        key, secret = api_key_create(name=payload.name, scopes=list(payload.scopes), created_by=user)
        return {**ApiKeyOut.from_orm(key).model_dump(mode="json"), "secret": secret}

    # The secret is shown once and never stored, not even in the Idempotency-Key record: a replay is refused
    # with 409 `idempotency_secret_not_replayable` naming the key created.
    return run_idempotent(request, key=idempotency_key, payload=payload, action=action, secret_fields=("secret",))


@router.post(
    "/api-keys/{key_id}/revoke",
    response=responses({200: ApiKeyOut}),
    summary="Revoke an integration API key",
    description=describe(
        "programme managers (role `programme_manager`).",
        "Requests with the key are refused (401) from now on. Revoking a revoked key changes nothing.",
        errors={404: "`not_found`: no key with this id."},
    ),
)
def revoke_api_key(request, key_id: int):
    require_role(request, Role.PROGRAMME_MANAGER)
    return api_key_revoke(key=get_object_or_404(ApiKey, pk=key_id))
