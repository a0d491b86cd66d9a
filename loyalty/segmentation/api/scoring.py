"""Manager API: scoring models and scoring runs (role programme_manager)."""

from django.shortcuts import get_object_or_404
from ninja import Path, Router, Status
from ninja.pagination import paginate

from accounts.models import Role
from core.auth import require_role, user_auth
from core.idempotency import IdempotencyKeyHeader, run_idempotent
from core.pagination import Page
from core.runs import RETRY_DESCRIPTION, RETRY_ERRORS
from core.schemas import describe, responses
from loyalty.segmentation.models import CustomerMetrics, ScoringModel, ScoringRun
from loyalty.segmentation.schemas.scoring import (
    CustomerMetricsOut,
    ScoringModelIn,
    ScoringModelOut,
    ScoringModelPatch,
    ScoringRunIn,
    ScoringRunOut,
)
from loyalty.segmentation.selectors import metrics_list, scoring_model_list, scoring_run_list
from loyalty.segmentation.services.scoring import (
    scoring_model_create,
    scoring_model_default,
    scoring_model_update,
    scoring_run_create,
    scoring_run_retry,
)

ID = Path(..., ge=1, le=2**62)
router = Router(tags=["scoring"], auth=user_auth)
MANAGER = Role.PROGRAMME_MANAGER
WHO = "programme managers (role `programme_manager`)."


@router.get(
    "/models",
    response=responses({200: list[ScoringModelOut]}),
    summary="List scoring models",
    description=describe(WHO, "Every version of every scoring model, newest first. Paginated (limit/offset)."),
)
@paginate(Page)
def list_models(request):
    require_role(request, MANAGER)
    return scoring_model_list()


@router.post(
    "/models",
    response=responses({201: ScoringModelOut}, 409),
    summary="Create a scoring model (or the next version of one)",
    description=describe(
        WHO,
        "Fields left out take the default model's values. A name that exists makes its next version. Accepts an "
        "`Idempotency-Key`.",
        errors={422: "`invalid_scoring_model`: weights or windows out of range (`fields` names them)."},
    ),
)
def create_model(request, payload: ScoringModelIn, idempotency_key: str | None = IdempotencyKeyHeader):
    user = require_role(request, MANAGER)
    data = payload.model_dump(exclude={"name"})
    return run_idempotent(
        request,
        key=idempotency_key,
        payload=payload,
        action=lambda: scoring_model_create(name=payload.name, created_by=user, **data),
        out=ScoringModelOut,
    )


@router.get(
    "/models/{model_id}",
    response=responses({200: ScoringModelOut}),
    summary="A scoring model",
    description=describe(WHO, "One version of a scoring model with its windows and weights."),
)
def get_model(request, model_id: int = ID):
    require_role(request, MANAGER)
    return get_object_or_404(ScoringModel, pk=model_id)


@router.patch(
    "/models/{model_id}",
    response=responses({200: ScoringModelOut}, 409),
    summary="Change an unused scoring model",
    description=describe(
        WHO,
        "Only fields sent change. A model is immutable once a scoring run used it: create a new version instead.",
        errors={
            409: "`scoring_model_locked`: a scoring run already used this model.",
            422: "`invalid_scoring_model`: weights or windows out of range (`fields` names them).",
        },
    ),
)
def update_model(request, payload: ScoringModelPatch, model_id: int = ID):
    require_role(request, MANAGER)
    model = get_object_or_404(ScoringModel, pk=model_id)
    return scoring_model_update(model=model, **payload.model_dump(exclude_unset=True))


@router.get(
    "/runs",
    response=responses({200: list[ScoringRunOut]}),
    summary="List scoring runs",
    description=describe(WHO, "Scoring runs with status, progress and timings, newest first. Paginated."),
)
@paginate(Page)
def list_runs(request):
    require_role(request, MANAGER)
    return scoring_run_list()


@router.post(
    "/runs",
    response=responses({202: ScoringRunOut}, 409),
    summary="Start a scoring run",
    description=describe(
        WHO,
        "Computes CustomerMetrics for every customer in the background (202); poll the run for its status. "
        "Without `scoring_model_id` the default model is used. Accepts an `Idempotency-Key`.",
        errors={404: "`not_found`: no scoring model with `scoring_model_id`."},
    ),
)
def create_run(request, payload: ScoringRunIn, idempotency_key: str | None = IdempotencyKeyHeader):
    user = require_role(request, MANAGER)
    model = (
        get_object_or_404(ScoringModel, pk=payload.scoring_model_id) if payload.scoring_model_id is not None else None
    )

    def action():
        return scoring_run_create(scoring_model=model or scoring_model_default(), as_of=payload.as_of, created_by=user)

    return run_idempotent(request, key=idempotency_key, payload=payload, action=action, out=ScoringRunOut, status=202)


@router.get(
    "/runs/{run_id}",
    response=responses({200: ScoringRunOut}),
    summary="A scoring run",
    description=describe(WHO, "Status (`pending`, `running`, `succeeded`, `failed`), progress, counts and timings."),
)
def get_run(request, run_id: int = ID):
    require_role(request, MANAGER)
    return get_object_or_404(ScoringRun, pk=run_id)


@router.post(
    "/runs/{run_id}/retry",
    response=responses({202: ScoringRunOut}, 409),
    summary="Retry a failed scoring run",
    description=describe(WHO, RETRY_DESCRIPTION, errors=RETRY_ERRORS),
)
def retry_run(request, run_id: int = ID):
    require_role(request, MANAGER)
    return Status(202, scoring_run_retry(run=get_object_or_404(ScoringRun, pk=run_id)))


@router.get(
    "/runs/{run_id}/metrics",
    response=responses({200: list[CustomerMetricsOut]}),
    summary="Metrics of a scoring run, by revenue rank",
    description=describe(
        WHO,
        "Revenue, revenue rank and percentile, engagement score and its parts, per customer. Paginated.",
    ),
)
@paginate(Page)
def list_metrics(request, run_id: int = ID):
    require_role(request, MANAGER)
    return metrics_list(run=get_object_or_404(ScoringRun, pk=run_id))


@router.get(
    "/runs/{run_id}/metrics/{customer_id}",
    response=responses({200: CustomerMetricsOut}),
    summary="One customer's metrics in a scoring run",
    description=describe(
        WHO,
        "The metrics of one customer in one run.",
        errors={404: "`not_found`: no such run, or the customer was not scored in it."},
    ),
)
def get_metrics(request, run_id: int = ID, customer_id: int = ID):
    require_role(request, MANAGER)
    return get_object_or_404(CustomerMetrics, scoring_run_id=run_id, customer_id=customer_id)
