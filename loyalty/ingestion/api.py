from ninja import Router, Schema

from core.auth import ingest_auth
from core.errors import ValidationFailed
from core.idempotency import IdempotencyKeyHeader, run_idempotent
from core.schemas import describe, responses
from loyalty.ingestion.schemas import CustomerBatchIn, IngestResultOut, InteractionBatchIn, RevenueBatchIn
from loyalty.ingestion.services.ingest import customer_refs_check, ingest_rows
from loyalty.ingestion.services.validation import RowsRejected, errors_as_fields, rows_validate

router = Router(tags=["ingest"], auth=ingest_auth)


class KeyInfoOut(Schema):
    id: int
    name: str
    scopes: list[str]


@router.get(
    "/whoami",
    response=responses({200: KeyInfoOut}),
    summary="Check an integration key",
    description=describe(
        "integrations, with an API key that has the `ingest` scope.",
        "Answers which API key the request used and its scopes. Integrations call it to test their setup.",
    ),
)
def whoami(request):
    key = request.auth
    return KeyInfoOut(id=key.pk, name=key.name, scopes=key.scopes)


_BATCH_WHO = "integrations, with an API key that has the `ingest` scope."
_BATCH_DOC = (
    "Up to 10,000 rows, upserted by `external_id`. The batch is all or nothing: if any row is bad the answer is "
    "a 422 and nothing is written. The answer counts created, updated and unchanged rows. Send an "
    "`Idempotency-Key` to make a retry safe (the first answer is replayed)."
)
_BATCH_ERRORS = {
    422: "`batch_rejected`: some rows are bad; `fields` names every bad row and field (`rows.<index>.<field>`)."
}


def _ingest(request, kind: str, payload, idempotency_key: str | None):
    def action() -> dict:
        try:
            rows = rows_validate(kind, payload.rows, refs_check=customer_refs_check)
            result = ingest_rows(kind=kind, rows=rows, checked=True)
        except RowsRejected as rejected:
            raise ValidationFailed(
                f"{rejected.total} problem(s) in the batch; nothing was written.",
                code="batch_rejected",
                fields=errors_as_fields(rejected.errors),
            ) from None
        return IngestResultOut(**result.as_dict()).model_dump(mode="json")

    return run_idempotent(request, key=idempotency_key, payload=payload, action=action, status=200)


@router.post(
    "/customers",
    response=responses({200: IngestResultOut}, 409),
    summary="Upsert a batch of customers",
    description=describe(
        _BATCH_WHO,
        _BATCH_DOC + " A customer turning from active to churned ends its programme memberships.",
        errors=_BATCH_ERRORS,
    ),
)
def ingest_customers(request, payload: CustomerBatchIn, idempotency_key: str | None = IdempotencyKeyHeader):
    return _ingest(request, "customers", payload, idempotency_key)


@router.post(
    "/revenue",
    response=responses({200: IngestResultOut}, 409),
    summary="Upsert a batch of revenue entries",
    description=describe(
        _BATCH_WHO, _BATCH_DOC + " `customer_external_id` must name an existing customer.", errors=_BATCH_ERRORS
    ),
)
def ingest_revenue(request, payload: RevenueBatchIn, idempotency_key: str | None = IdempotencyKeyHeader):
    return _ingest(request, "revenue", payload, idempotency_key)


@router.post(
    "/interactions",
    response=responses({200: IngestResultOut}, 409),
    summary="Upsert a batch of channel interactions",
    description=describe(
        _BATCH_WHO, _BATCH_DOC + " `customer_external_id` must name an existing customer.", errors=_BATCH_ERRORS
    ),
)
def ingest_interactions(request, payload: InteractionBatchIn, idempotency_key: str | None = IdempotencyKeyHeader):
    return _ingest(request, "interactions", payload, idempotency_key)
