"""Manager API: segments, their runs, members, diff, explain and CSV export (role programme_manager)."""

from django.shortcuts import get_object_or_404
from ninja import Path, Query, Router, Status
from ninja.pagination import paginate

from accounts.models import Role
from core.auth import require_role, user_auth
from core.csv_stream import csv_response
from core.idempotency import IdempotencyKeyHeader, run_idempotent
from core.pagination import Page
from core.runs import RETRY_DESCRIPTION, RETRY_ERRORS
from core.schemas import describe, file_response, responses
from loyalty.segmentation.models import ScoringRun, Segment, SegmentRun
from loyalty.segmentation.schemas.segments import (
    SegmentDiffOut,
    SegmentExplainOut,
    SegmentIn,
    SegmentMemberOut,
    SegmentOut,
    SegmentPatch,
    SegmentPreviewIn,
    SegmentPreviewOut,
    SegmentRunIn,
    SegmentRunOut,
)
from loyalty.segmentation.selectors import segment_list, segment_member_list, segment_run_list
from loyalty.segmentation.services.segments import (
    segment_create,
    segment_preview,
    segment_run_create,
    segment_run_diff,
    segment_run_explain,
    segment_run_retry,
    segment_update,
)

ID = Path(..., ge=1, le=2**62)
router = Router(tags=["segments"], auth=user_auth)
MANAGER = Role.PROGRAMME_MANAGER
WHO = "programme managers (role `programme_manager`)."


def _scoring_run(scoring_run_id: int | None) -> ScoringRun | None:
    return get_object_or_404(ScoringRun, pk=scoring_run_id) if scoring_run_id is not None else None


# Runs first: their paths must not be taken for a segment id.
@router.get(
    "/runs/{run_id}",
    response=responses({200: SegmentRunOut}),
    summary="A segment run",
    description=describe(WHO, "Status, progress, member count, timings and the scoring run it used."),
)
def get_run(request, run_id: int = ID):
    require_role(request, MANAGER)
    return get_object_or_404(SegmentRun, pk=run_id)


@router.post(
    "/runs/{run_id}/retry",
    response=responses({202: SegmentRunOut}, 409),
    summary="Retry a failed segment run",
    description=describe(WHO, RETRY_DESCRIPTION, errors=RETRY_ERRORS),
)
def retry_run(request, run_id: int = ID):
    require_role(request, MANAGER)
    return Status(202, segment_run_retry(run=get_object_or_404(SegmentRun, pk=run_id)))


@router.get(
    "/runs/{run_id}/members",
    response=responses({200: list[SegmentMemberOut]}),
    summary="Members of a segment run, by rank",
    description=describe(WHO, "Each member with its rank and the metric values that qualified it. Paginated."),
)
@paginate(Page)
def list_members(request, run_id: int = ID):
    require_role(request, MANAGER)
    return segment_member_list(run=get_object_or_404(SegmentRun, pk=run_id))


@router.get(
    "/runs/{run_id}/members.csv",
    response=responses({200: None}),
    summary="Members of a segment run as CSV",
    description=describe(
        WHO, "CSV columns: rank, customer_id, external_id, then the values that qualified each member."
    ),
    openapi_extra=file_response("text/csv", "A CSV table, one row per member."),
)
def export_members(request, run_id: int = ID):
    require_role(request, MANAGER)
    run = get_object_or_404(SegmentRun, pk=run_id)
    members = segment_member_list(run=run)
    first = members.first()
    keys = sorted(first.values) if first else []

    rows = (
        [rank, customer_id, external_id, *(values.get(k) for k in keys)]
        for rank, customer_id, external_id, values in members.values_list(
            "rank", "customer_id", "customer__external_id", "values"
        ).iterator(chunk_size=5000)
    )
    return csv_response(["rank", "customer_id", "external_id", *keys], rows, filename=f"segment-run-{run.pk}.csv")


@router.get(
    "/runs/{run_id}/diff",
    response=responses({200: SegmentDiffOut}),
    summary="Diff two segment runs",
    description=describe(
        WHO,
        "Customers that entered (in this run, not in `against`), left and stayed: counts and the first ids.",
        errors={400: "`segment_run_not_succeeded`: either run has not finished successfully."},
    ),
)
def diff_runs(request, run_id: int = ID, against: int = Query(..., ge=1, le=2**62)):
    require_role(request, MANAGER)
    run = get_object_or_404(SegmentRun, pk=run_id)
    return segment_run_diff(run=run, against=get_object_or_404(SegmentRun, pk=against))


@router.get(
    "/runs/{run_id}/explain",
    response=responses({200: SegmentExplainOut}),
    summary="Why a customer is in or out of a segment run",
    description=describe(
        WHO,
        "Every comparison of the run's rule with the customer's value, and for top N the rank or the cutoff.",
        errors={
            400: "`segment_run_not_succeeded`: the run has not finished successfully.",
            404: "`customer_not_found`: no customer with the id `customer`.",
        },
    ),
)
def explain(request, run_id: int = ID, customer: int = Query(..., ge=1, le=2**62)):
    require_role(request, MANAGER)
    return segment_run_explain(run=get_object_or_404(SegmentRun, pk=run_id), customer_id=customer)


@router.post(
    "/preview",
    response=responses({200: SegmentPreviewOut}),
    summary="Preview a segment rule: count and a sample, nothing saved",
    description=describe(
        WHO,
        "Evaluates the rule on a scoring run (default: the newest successful one) without saving anything.",
        errors={
            400: [
                "`no_scoring_run`: no scoring run has finished yet.",
                "`scoring_run_not_succeeded`: the scoring run asked for has not finished successfully.",
            ],
            422: "`invalid_segment_rule`: the rule does not validate; `fields` names every bad node by its path.",
        },
    ),
)
def preview(request, payload: SegmentPreviewIn):
    require_role(request, MANAGER)
    return segment_preview(
        rule=payload.rule,
        top_n=payload.top_n,
        top_by=payload.top_by,
        tie_break=payload.tie_break,
        scoring_run=_scoring_run(payload.scoring_run_id),
    )


@router.get(
    "",
    response=responses({200: list[SegmentOut]}),
    summary="List segments",
    description=describe(WHO, "Segments with their rules. Paginated."),
)
@paginate(Page)
def list_segments(request):
    require_role(request, MANAGER)
    return segment_list()


@router.post(
    "",
    response=responses({201: SegmentOut}, 409),
    summary="Create a segment",
    description=describe(
        WHO,
        "A rule tree of `all` / `any` / `not` over metric and attribute comparisons, plus an optional top N. "
        "Accepts an `Idempotency-Key`.",
        errors={
            409: "`segment_name_taken`: another segment has this name.",
            422: "`invalid_segment_rule`: the rule does not validate; `fields` names every bad node by its path.",
        },
    ),
)
def create_segment(request, payload: SegmentIn, idempotency_key: str | None = IdempotencyKeyHeader):
    user = require_role(request, MANAGER)
    return run_idempotent(
        request,
        key=idempotency_key,
        payload=payload,
        action=lambda: segment_create(created_by=user, **payload.model_dump()),
        out=SegmentOut,
    )


@router.get(
    "/{segment_id}",
    response=responses({200: SegmentOut}),
    summary="A segment",
    description=describe(WHO, "A segment with its rule."),
)
def get_segment(request, segment_id: int = ID):
    require_role(request, MANAGER)
    return get_object_or_404(Segment, pk=segment_id)


@router.patch(
    "/{segment_id}",
    response=responses({200: SegmentOut}, 409),
    summary="Change a segment",
    description=describe(
        WHO,
        "Only fields sent change. Runs keep the rule they ran with.",
        errors={
            409: "`segment_name_taken`: another segment has this name.",
            422: "`invalid_segment_rule`: the rule does not validate; `fields` names every bad node by its path.",
        },
    ),
)
def update_segment(request, payload: SegmentPatch, segment_id: int = ID):
    require_role(request, MANAGER)
    segment = get_object_or_404(Segment, pk=segment_id)
    changes = {k: v for k, v in payload.model_dump(exclude_unset=True).items() if v is not None or k == "top_n"}
    return segment_update(segment=segment, **changes)


@router.get(
    "/{segment_id}/runs",
    response=responses({200: list[SegmentRunOut]}),
    summary="Runs of a segment",
    description=describe(WHO, "The segment's runs, newest first. Paginated."),
)
@paginate(Page)
def list_runs(request, segment_id: int = ID):
    require_role(request, MANAGER)
    return segment_run_list(segment=get_object_or_404(Segment, pk=segment_id))


@router.post(
    "/{segment_id}/runs",
    response=responses({202: SegmentRunOut}, 409),
    summary="Run a segment",
    description=describe(
        WHO,
        "Runs in the background (202) on a scoring run (default: the newest successful one); poll the run. "
        "Accepts an `Idempotency-Key`.",
        errors={
            400: [
                "`no_scoring_run`: no scoring run has finished yet.",
                "`scoring_run_not_succeeded`: the scoring run asked for has not finished successfully.",
            ]
        },
    ),
)
def create_run(
    request, payload: SegmentRunIn, segment_id: int = ID, idempotency_key: str | None = IdempotencyKeyHeader
):
    user = require_role(request, MANAGER)
    segment = get_object_or_404(Segment, pk=segment_id)
    scoring_run = _scoring_run(payload.scoring_run_id)
    return run_idempotent(
        request,
        key=idempotency_key,
        payload=payload,
        action=lambda: segment_run_create(segment=segment, scoring_run=scoring_run, created_by=user),
        out=SegmentRunOut,
        status=202,
    )
