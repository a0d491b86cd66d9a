"""Retention outcomes and the programme impact report.

- `router` (mounted at /retention): programme managers read outcomes, record corrections, read the impact
  report (live or stored), its charts and CSV tables, and a member's timeline.
- `ingest_router` (mounted at /ingest/outcomes): integrations push outcome batches with an ingest key.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from ninja import Query, Router, Status
from ninja.pagination import paginate

from accounts.models import Role
from core.auth import ingest_auth, require_role, user_auth
from core.errors import Conflict
from core.idempotency import IdempotencyKeyHeader, run_idempotent
from core.pagination import Page
from core.runs import RETRY_DESCRIPTION, RETRY_ERRORS
from core.schemas import describe, file_response, responses
from loyalty.customers.models import Customer
from loyalty.programmes.models import Programme
from loyalty.retention.models import ImpactReport, RetentionOutcome
from loyalty.retention.schemas import (
    ImpactReportBodyOut,
    ImpactReportIn,
    ImpactReportOut,
    ManualOutcomeIn,
    OutcomeBatchIn,
    OutcomeBatchOut,
    OutcomeOut,
    TimelineEntryOut,
)
from loyalty.retention.selectors import outcomes_list
from loyalty.retention.services.impact import (
    DEFAULT_HORIZONS,
    impact_report_compute,
    impact_report_request,
    impact_report_retry,
)
from loyalty.retention.services.impact_output import chart_svg, report_csv
from loyalty.retention.services.outcomes import OutcomeRow, outcome_record_manual, outcomes_record
from loyalty.retention.timeline import timeline_for_customer

router = Router(tags=["retention"], auth=user_auth)
ingest_router = Router(tags=["ingest"], auth=ingest_auth)

MANAGERS = "programme managers (role `programme_manager`)."
NOT_READY = "`report_not_ready`: the stored report `report_id` has not finished (pending, running or failed)."
OUTCOME_ROWS = "`outcome_rows_invalid`: {what}; `fields` names every bad {where} and field, nothing was recorded."

ChartName = Literal["survival", "uplift-by-tier"]
CsvTable = Literal["comparisons", "srm", "take_up", "survival", "revenue", "cuped"]


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


# --- ingestion ----------------------------------------------------------------------------------------------


@ingest_router.post(
    "",
    response=responses({201: OutcomeBatchOut}, 409),
    summary="Push a batch of retention outcomes",
    description=describe(
        "integrations, with an API key that has the `ingest` scope.",
        "Up to 5000 outcomes per batch, all or nothing. Name the membership by `membership_id` or by "
        "`programme_id` + `customer_external_id`. Corrections are new rows with `supersedes_id` or "
        "`supersedes_external_id`; the corrected row stays in the history. Resending a row with the same "
        "`external_id` and values is a no-op (`unchanged`). Accepts an `Idempotency-Key`.",
        errors={
            422: OUTCOME_ROWS.format(
                what="unknown memberships, bad supersessions or conflicting rows", where="row (`outcomes.<index>`)"
            )
        },
    ),
)
def ingest_outcomes(request, payload: OutcomeBatchIn, idempotency_key: str | None = IdempotencyKeyHeader):
    def action():
        rows = [OutcomeRow.from_mapping(item.dict()) for item in payload.outcomes]
        result = outcomes_record(
            rows=rows,
            source=RetentionOutcome.Source.INGEST,
            row_labels=[f"outcomes.{i}" for i in range(len(rows))],
        )
        return {
            "received": result.received,
            "created": len(result.created),
            "unchanged": len(result.unchanged),
            "ids": result.ids,
        }

    return run_idempotent(request, key=idempotency_key, payload=payload, action=action)


# --- outcomes (managers) ------------------------------------------------------------------------------------


@router.get(
    "/outcomes",
    response=responses({200: list[OutcomeOut]}),
    summary="List retention outcomes",
    description=describe(
        MANAGERS,
        "Newest first, including superseded rows (flagged `superseded`) unless `include_superseded=false`: the "
        "history of corrections stays visible. Paginated.",
    ),
)
@paginate(Page)
def list_outcomes(
    request,
    programme_id: int | None = Query(None, ge=1, le=2**63 - 1),
    membership_id: int | None = Query(None, ge=1, le=2**63 - 1),
    customer_id: int | None = Query(None, ge=1, le=2**63 - 1),
    include_superseded: bool = True,
):
    require_role(request, Role.PROGRAMME_MANAGER)
    return outcomes_list(
        programme_id=programme_id,
        membership_id=membership_id,
        customer_id=customer_id,
        include_superseded=include_superseded,
    )


@router.post(
    "/outcomes",
    response=responses({201: OutcomeOut}, 409),
    summary="Record or correct one outcome",
    description=describe(
        MANAGERS,
        "Source `manual`. With `supersedes_id` the new row corrects an earlier outcome of the same membership; the "
        "earlier one stays in the history and reports stop counting it. Accepts an `Idempotency-Key`.",
        errors={422: OUTCOME_ROWS.format(what="unknown membership or bad `supersedes_id`", where="value")},
    ),
)
def create_outcome(request, payload: ManualOutcomeIn, idempotency_key: str | None = IdempotencyKeyHeader):
    require_role(request, Role.PROGRAMME_MANAGER)

    def action():
        outcome = outcome_record_manual(
            membership_id=payload.membership_id,
            observed_at=payload.observed_at,
            outcome=payload.outcome,
            revenue_change=payload.revenue_change,
            intends_to_stay=payload.intends_to_stay,
            supersedes_id=payload.supersedes_id,
        )
        outcome.is_superseded = False
        return outcome

    return run_idempotent(request, key=idempotency_key, payload=payload, action=action, out=OutcomeOut)


# --- impact report ------------------------------------------------------------------------------------------


def report_for(programme: Programme, *, report_id: int | None, as_of: datetime | None, horizons) -> dict:
    """A stored report's result (must belong to the programme and be finished), or a live computation."""
    if report_id is not None:
        stored = get_object_or_404(ImpactReport, pk=report_id, programme=programme)
        if stored.status != ImpactReport.Status.SUCCEEDED or stored.result is None:
            raise Conflict(f"Report {stored.pk} is {stored.status}, not finished.", code="report_not_ready")
        return stored.result
    return impact_report_compute(programme=programme, as_of=_aware(as_of), horizons=horizons or DEFAULT_HORIZONS)


@router.get(
    "/programmes/{programme_id}/impact",
    response=responses({200: ImpactReportBodyOut}),
    summary="Impact report of a programme (computed now)",
    description=describe(
        MANAGERS,
        "Intention-to-treat comparison of the randomly assigned treatment and control groups: "
        "group sizes with a sample-ratio check, take-up and the effect on those who took it up, retention at each "
        "horizon with uplift, 95% CI, p-value and relative churn reduction, the same per tier, enrolment cohort "
        "and engagement band, Kaplan-Meier curves with log-rank test and RMST gain at 12 months, revenue per "
        "customer with CUPED adjustment. Every figure carries an `explanation`. For large programmes request a "
        "stored report (POST .../impact-reports) instead.",
        errors={404: "`not_found`: no programme with this id."},
    ),
)
def get_impact(
    request,
    programme_id: int,
    as_of: datetime | None = None,
    horizons: list[int] = Query(list(DEFAULT_HORIZONS)),
):
    require_role(request, Role.PROGRAMME_MANAGER)
    programme = get_object_or_404(Programme, pk=programme_id)
    return report_for(programme, report_id=None, as_of=as_of, horizons=horizons)


@router.post(
    "/programmes/{programme_id}/impact-reports",
    response=responses({202: ImpactReportOut}, 409),
    summary="Compute a stored impact report in the background",
    description=describe(
        MANAGERS,
        "Answers 202 with the pending report; poll GET /retention/impact-reports/{id}. Accepts an `Idempotency-Key`.",
        errors={404: "`not_found`: no programme with this id."},
    ),
)
def request_impact_report(
    request, programme_id: int, payload: ImpactReportIn, idempotency_key: str | None = IdempotencyKeyHeader
):
    user = require_role(request, Role.PROGRAMME_MANAGER)
    programme = get_object_or_404(Programme, pk=programme_id)
    return run_idempotent(
        request,
        key=idempotency_key,
        payload=payload,
        action=lambda: impact_report_request(
            programme=programme, as_of=_aware(payload.as_of), horizons=payload.horizons, user=user
        ),
        out=ImpactReportOut,
        status=202,
    )


@router.get(
    "/impact-reports/{report_id}",
    response=responses({200: ImpactReportOut}),
    summary="A stored impact report: status, progress and result",
    description=describe(
        MANAGERS,
        "Status (`pending`, `running`, `succeeded`, `failed`), progress and, once succeeded, the report body.",
        errors={404: "`not_found`: no stored report with this id."},
    ),
)
def get_impact_report(request, report_id: int):
    require_role(request, Role.PROGRAMME_MANAGER)
    return get_object_or_404(ImpactReport, pk=report_id)


@router.post(
    "/impact-reports/{report_id}/retry",
    response=responses({202: ImpactReportOut}, 409),
    summary="Retry a failed stored impact report",
    description=describe("programme managers (role `programme_manager`).", RETRY_DESCRIPTION, errors=RETRY_ERRORS),
)
def retry_impact_report(request, report_id: int):
    require_role(request, Role.PROGRAMME_MANAGER)
    return Status(202, impact_report_retry(report=get_object_or_404(ImpactReport, pk=report_id)))


SVG_RESPONSE = file_response("image/svg+xml", "An SVG image.")
CSV_RESPONSE = file_response("text/csv", "A CSV table.")


@router.get(
    "/programmes/{programme_id}/impact/charts/{chart}.svg",
    response=responses({200: None}, 409),
    openapi_extra=SVG_RESPONSE,
    summary="Impact chart as SVG",
    description=describe(
        MANAGERS,
        "`survival`: Kaplan-Meier curves per group with 95% bands and numbers at risk. `uplift-by-tier`: retention "
        "uplift per tier at `months` (default the longest horizon) with 95% CIs. From a stored report "
        "(`report_id`) or computed now.",
        errors={404: "`not_found`: no programme with this id, or no such stored report of it.", 409: NOT_READY},
    ),
)
def impact_chart(
    request,
    programme_id: int,
    chart: ChartName,
    report_id: int | None = None,
    months: int | None = Query(None, ge=1, le=60),
    as_of: datetime | None = None,
):
    require_role(request, Role.PROGRAMME_MANAGER)
    programme = get_object_or_404(Programme, pk=programme_id)
    horizons = list(DEFAULT_HORIZONS) if months is None else sorted({*DEFAULT_HORIZONS, months})
    report = report_for(programme, report_id=report_id, as_of=as_of, horizons=horizons)
    return HttpResponse(chart_svg(report, chart=chart, months=months), content_type="image/svg+xml")


@router.get(
    "/programmes/{programme_id}/impact/export.csv",
    response=responses({200: None}, 409),
    openapi_extra=CSV_RESPONSE,
    summary="Impact report table as CSV",
    description=describe(
        MANAGERS,
        "`table`: comparisons (retention per horizon overall, per tier, cohort and engagement band), srm, take_up, "
        "survival (Kaplan-Meier steps), revenue (per customer per month), cuped. From a stored report "
        "(`report_id`) or computed now.",
        errors={404: "`not_found`: no programme with this id, or no such stored report of it.", 409: NOT_READY},
    ),
)
def impact_csv(
    request,
    programme_id: int,
    table: CsvTable = "comparisons",
    report_id: int | None = None,
    as_of: datetime | None = None,
):
    require_role(request, Role.PROGRAMME_MANAGER)
    programme = get_object_or_404(Programme, pk=programme_id)
    report = report_for(programme, report_id=report_id, as_of=as_of, horizons=DEFAULT_HORIZONS)
    response = HttpResponse(report_csv(report, table), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="impact-{programme.pk}-{table}.csv"'
    return response


# --- timeline -----------------------------------------------------------------------------------------------


@router.get(
    "/customers/{customer_id}/timeline",
    response=responses({200: list[TimelineEntryOut]}),
    summary="A member's timeline",
    description=describe(
        MANAGERS,
        "Enrolments, tier changes, retention outcomes (with corrections) and churn, plus what other areas register "
        "(concierge requests, bookings), newest first. Paginated.",
        errors={404: "`not_found`: no customer with this id."},
    ),
)
@paginate(Page)
def customer_timeline(request, customer_id: int):
    require_role(request, Role.PROGRAMME_MANAGER)
    customer = get_object_or_404(Customer, pk=customer_id)
    return timeline_for_customer(customer.pk)
