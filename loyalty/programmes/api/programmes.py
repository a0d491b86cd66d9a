"""Programme manager API: programmes, tiers, enrolment, memberships, tier history, overrides."""

from typing import Literal

from ninja import Query, Router, Schema, Status
from ninja.pagination import paginate
from pydantic import Field

from accounts.models import Role
from core.auth import require_role, user_auth
from core.errors import NotFound
from core.idempotency import IdempotencyKeyHeader, run_idempotent
from core.pagination import Page
from core.runs import RETRY_DESCRIPTION, RETRY_ERRORS
from core.schemas import describe, responses
from loyalty.programmes.models import Enrolment, Programme, Tier
from loyalty.programmes.schemas import (
    EnrolmentIn,
    EnrolmentOut,
    EvaluationOut,
    MembershipOut,
    OverrideIn,
    PowerOut,
    ProgrammeIn,
    ProgrammeOut,
    ProgrammePatch,
    TierChangeOut,
    TierIn,
    TierOut,
    TierPatch,
)
from loyalty.programmes.selectors.programmes import (
    membership_get,
    memberships_list,
    programme_get,
    tier_changes_list,
    tier_get,
)
from loyalty.programmes.services.enrolment import enrolment_retry, enrolment_start, programme_power_table
from loyalty.programmes.services.programmes import (
    programme_create,
    programme_update,
    tier_create,
    tier_delete,
    tier_update,
)
from loyalty.programmes.services.tier_policy import (
    membership_override_clear,
    membership_override_set,
    programme_evaluate,
)
from loyalty.segmentation.models import SegmentRun

router = Router(tags=["programmes"], auth=user_auth)

MANAGER = "programme managers (role `programme_manager`)."
PROGRAMME_404 = "`programme_not_found`: no programme with this id."
TIER_404 = [PROGRAMME_404, "`tier_not_found`: no tier with this id in the programme."]
MEMBERSHIP_404 = [PROGRAMME_404, "`membership_not_found`: no membership with this id in the programme."]
TIERS_422 = [
    "`invalid_tier`: thresholds must increase with rank, names are required (`fields` names them).",
    "`tier_rank_taken`: another tier of the programme has this rank.",
]


def _manager(request):
    return require_role(request, Role.PROGRAMME_MANAGER)


# Programmes


@router.get(
    "",
    response=responses({200: list[ProgrammeOut]}),
    summary="List programmes",
    description=describe(MANAGER, "Programmes with their holdout and tier policy. Paginated."),
)
@paginate(Page)
def list_programmes(request):
    _manager(request)
    return Programme.objects.order_by("id")


@router.post(
    "",
    response=responses({201: ProgrammeOut}, 409),
    summary="Create a programme",
    description=describe(
        MANAGER,
        "The holdout seed is generated when omitted. Accepts an `Idempotency-Key`.",
        errors={
            409: "`programme_name_taken`: another programme has this name.",
            422: "`invalid_programme`: a required value is missing or blank (`fields` names it).",
        },
    ),
)
def create_programme(request, payload: ProgrammeIn, idempotency_key: str | None = IdempotencyKeyHeader):
    user = _manager(request)
    return run_idempotent(
        request,
        key=idempotency_key,
        payload=payload,
        action=lambda: programme_create(created_by=user, **payload.model_dump()),
        out=ProgrammeOut,
    )


@router.get(
    "/{programme_id}",
    response=responses({200: ProgrammeOut}),
    summary="Get a programme",
    description=describe(MANAGER, "A programme with its holdout and tier policy.", errors={404: PROGRAMME_404}),
)
def get_programme(request, programme_id: int):
    _manager(request)
    return programme_get(programme_id)


@router.patch(
    "/{programme_id}",
    response=responses({200: ProgrammeOut}, 409),
    summary="Change a programme",
    description=describe(
        MANAGER,
        "Only fields sent change. Seed, holdout and qualifying metric are frozen once customers are enrolled.",
        errors={
            404: PROGRAMME_404,
            409: [
                "`programme_has_members`: a frozen field changed after customers were enrolled.",
                "`programme_name_taken`: another programme has this name.",
            ],
            422: "`invalid_programme`: a required value is blank (`fields` names it).",
        },
    ),
)
def update_programme(request, programme_id: int, payload: ProgrammePatch):
    _manager(request)
    return programme_update(programme=programme_get(programme_id), **payload.model_dump(exclude_unset=True))


class PowerQuery(Schema):
    customers: int = Field(100_000, ge=2, le=100_000_000, description="Customers to enrol (both groups).")


@router.get(
    "/{programme_id}/power",
    response=responses({200: PowerOut}),
    summary="Detectable retention effect by holdout size",
    description=describe(
        MANAGER,
        "For planning the holdout: the smallest retention difference (percentage points) detectable at 95% "
        "confidence and 80% power, for several holdout shares and the programme's own.",
        errors={404: PROGRAMME_404},
    ),
)
def programme_power(request, programme_id: int, query: Query[PowerQuery]):
    _manager(request)
    return programme_power_table(programme=programme_get(programme_id), customers=query.customers)


# Tiers


@router.get(
    "/{programme_id}/tiers",
    response=responses({200: list[TierOut]}),
    summary="List tiers",
    description=describe(
        MANAGER, "The programme's tiers by rank, with thresholds and benefits.", errors={404: PROGRAMME_404}
    ),
)
@paginate(Page)
def list_tiers(request, programme_id: int):
    _manager(request)
    return Tier.objects.filter(programme=programme_get(programme_id)).order_by("rank")


@router.post(
    "/{programme_id}/tiers",
    response=responses({201: TierOut}, 409),
    summary="Add a tier",
    description=describe(
        MANAGER,
        "Ranks are unique; thresholds must increase with rank. Accepts an `Idempotency-Key`.",
        errors={404: PROGRAMME_404, 422: TIERS_422},
    ),
)
def create_tier(request, programme_id: int, payload: TierIn, idempotency_key: str | None = IdempotencyKeyHeader):
    _manager(request)
    programme = programme_get(programme_id)
    return run_idempotent(
        request,
        key=idempotency_key,
        payload=payload,
        action=lambda: tier_create(programme=programme, **payload.model_dump()),
        out=TierOut,
    )


@router.patch(
    "/{programme_id}/tiers/{tier_id}",
    response=responses({200: TierOut}),
    summary="Change a tier",
    description=describe(
        MANAGER,
        "Only fields sent change; the ladder is validated again as a whole.",
        errors={404: TIER_404, 422: TIERS_422},
    ),
)
def update_tier(request, programme_id: int, tier_id: int, payload: TierPatch):
    _manager(request)
    return tier_update(tier=tier_get(programme_get(programme_id), tier_id), **payload.model_dump(exclude_unset=True))


@router.delete(
    "/{programme_id}/tiers/{tier_id}",
    response=responses({204: None}, 409),
    summary="Delete a tier",
    description=describe(
        MANAGER,
        "Only a tier that never had members can be deleted. 204 without a body.",
        errors={404: TIER_404, 409: "`tier_in_use`: the tier has or had members."},
    ),
)
def delete_tier(request, programme_id: int, tier_id: int):
    _manager(request)
    tier_delete(tier=tier_get(programme_get(programme_id), tier_id))
    return Status(204, None)


# Enrolment


@router.post(
    "/{programme_id}/enrolments",
    response=responses({200: EnrolmentOut, 201: EnrolmentOut}, 409),
    summary="Enrol a segment run",
    description=describe(
        MANAGER,
        "Queues the set-based enrolment of a succeeded segment run: customers not yet in the programme are split "
        "into treatment and control by the reproducible hash of the programme seed and the customer id. 201 with "
        "the queued enrolment; enrolling the same run again answers 200 with the existing enrolment and changes "
        "nothing. Follow `status`/`result` with GET. Accepts an `Idempotency-Key`.",
        errors={
            400: [
                "`programme_closed`: the programme is not active.",
                "`segment_run_not_succeeded`: the segment run has not finished successfully.",
                "`programme_has_no_tiers`: add tiers before enrolling.",
            ],
            404: [PROGRAMME_404, "`segment_run_not_found`: no segment run with `segment_run_id`."],
        },
    ),
)
def create_enrolment(
    request, programme_id: int, payload: EnrolmentIn, idempotency_key: str | None = IdempotencyKeyHeader
):
    user = _manager(request)
    programme = programme_get(programme_id)
    run = SegmentRun.objects.filter(pk=payload.segment_run_id).first()
    if run is None:
        raise NotFound("No such segment run.", code="segment_run_not_found")
    existing = Enrolment.objects.filter(programme=programme, segment_run=run).first()
    if existing is not None and existing.status != "failed":
        return Status(200, existing)
    return run_idempotent(
        request,
        key=idempotency_key,
        payload=payload,
        action=lambda: enrolment_start(programme=programme, segment_run=run, actor=user)[0],
        out=EnrolmentOut,
    )


@router.get(
    "/{programme_id}/enrolments",
    response=responses({200: list[EnrolmentOut]}),
    summary="List enrolments",
    description=describe(MANAGER, "The programme's enrolments, newest first. Paginated.", errors={404: PROGRAMME_404}),
)
@paginate(Page)
def list_enrolments(request, programme_id: int):
    _manager(request)
    return Enrolment.objects.filter(programme=programme_get(programme_id)).order_by("-id")


@router.get(
    "/{programme_id}/enrolments/{enrolment_id}",
    response=responses({200: EnrolmentOut}),
    summary="Get an enrolment and its result",
    description=describe(
        MANAGER,
        "`result`: counts per group and tier, group means of revenue and engagement, sample-ratio checks and the "
        "minimum detectable retention effect.",
        errors={404: [PROGRAMME_404, "`enrolment_not_found`: no enrolment with this id in the programme."]},
    ),
)
def get_enrolment(request, programme_id: int, enrolment_id: int):
    _manager(request)
    enrolment = Enrolment.objects.filter(programme=programme_get(programme_id), pk=enrolment_id).first()
    if enrolment is None:
        raise NotFound("No such enrolment.", code="enrolment_not_found")
    return enrolment


@router.post(
    "/{programme_id}/enrolments/{enrolment_id}/retry",
    response=responses({202: EnrolmentOut}, 409),
    summary="Retry a failed enrolment",
    description=describe(
        MANAGER,
        f"{RETRY_DESCRIPTION} It writes only the memberships still missing.",
        errors={**RETRY_ERRORS, 404: "`programme_not_found`, `enrolment_not_found`: no such programme or enrolment."},
    ),
)
def retry_enrolment(request, programme_id: int, enrolment_id: int):
    _manager(request)
    enrolment = Enrolment.objects.filter(programme=programme_get(programme_id), pk=enrolment_id).first()
    if enrolment is None:
        raise NotFound("No such enrolment.", code="enrolment_not_found")
    return Status(202, enrolment_retry(enrolment=enrolment))


@router.post(
    "/{programme_id}/evaluate",
    response=responses({200: EvaluationOut}),
    summary="Re-evaluate tiers now",
    description=describe(
        MANAGER,
        "Runs the tier policy for every member now (the beat task does it on the programme's cadence). "
        "Idempotent within a day.",
        errors={404: PROGRAMME_404},
    ),
)
def evaluate(request, programme_id: int):
    _manager(request)
    return programme_evaluate(programme=programme_get(programme_id))


# Memberships


class MembershipFilters(Schema):
    group: Literal["treatment", "control"] | None = None
    status: Literal["active", "holdout", "ended"] | None = None
    tier_id: int | None = Field(None, ge=1, le=2**62, description="Tier, or shadow tier for the control group.")
    source_run_id: int | None = Field(None, ge=1, le=2**62)
    customer_external_id: str | None = Field(None, max_length=64, pattern=r"^[^\x00]*$")
    below_threshold: bool | None = Field(None, description="Members in a downgrade grace period.")
    has_override: bool | None = None


@router.get(
    "/{programme_id}/memberships",
    response=responses({200: list[MembershipOut]}),
    summary="List memberships",
    description=describe(
        MANAGER,
        "Both groups (treatment and control), filtered by group, status, tier, source run, customer, grace period "
        "or override. Paginated.",
        errors={404: PROGRAMME_404},
    ),
)
@paginate(Page)
def list_memberships(request, programme_id: int, filters: Query[MembershipFilters]):
    _manager(request)
    return memberships_list(programme=programme_get(programme_id), **filters.model_dump())


@router.get(
    "/{programme_id}/memberships/{membership_id}",
    response=responses({200: MembershipOut}),
    summary="Get a membership",
    description=describe(
        MANAGER, "One membership with its tier, override and grace period.", errors={404: MEMBERSHIP_404}
    ),
)
def get_membership(request, programme_id: int, membership_id: int):
    _manager(request)
    return membership_get(programme_get(programme_id), membership_id)


class TierChangeFilters(Schema):
    reason: Literal["enrolment", "upgrade", "downgrade", "override", "override_expired", "ended"] | None = None
    membership_id: int | None = Field(None, ge=1, le=2**62)


@router.get(
    "/{programme_id}/tier-changes",
    response=responses({200: list[TierChangeOut]}),
    summary="Tier-change history",
    description=describe(
        MANAGER, "Tier changes of the programme's members, newest first. Paginated.", errors={404: PROGRAMME_404}
    ),
)
@paginate(Page)
def list_tier_changes(request, programme_id: int, filters: Query[TierChangeFilters]):
    _manager(request)
    return tier_changes_list(programme=programme_get(programme_id), **filters.model_dump())


@router.put(
    "/{programme_id}/memberships/{membership_id}/override",
    response=responses({200: MembershipOut}),
    summary="Set a tier override",
    description=describe(
        MANAGER,
        "The override tier applies until `expires_at` (future), whatever the evaluation says; recorded as a "
        "TierChange `override` with the reason.",
        errors={
            400: "`membership_not_active`: only an active treatment membership can have an override.",
            404: [*MEMBERSHIP_404, "`tier_not_found`: `tier_id` is not a tier of this programme."],
            422: "`invalid_override`: `expires_at` not in the future, or no reason (`fields` names them).",
        },
    ),
)
def set_override(request, programme_id: int, membership_id: int, payload: OverrideIn):
    user = _manager(request)
    programme = programme_get(programme_id)
    membership = membership_get(programme, membership_id)
    tier = Tier.objects.filter(pk=payload.tier_id, programme=programme).first()
    if tier is None:
        raise NotFound("No such tier in this programme.", code="tier_not_found")
    membership_override_set(
        membership=membership, tier=tier, expires_at=payload.expires_at, reason=payload.reason, actor=user
    )
    return membership_get(programme, membership_id)


@router.delete(
    "/{programme_id}/memberships/{membership_id}/override",
    response=responses({200: MembershipOut}),
    summary="Remove a tier override",
    description=describe(
        MANAGER,
        "Back to the evaluated tier now (TierChange `override_expired`). Idempotent.",
        errors={404: MEMBERSHIP_404},
    ),
)
def clear_override(request, programme_id: int, membership_id: int):
    user = _manager(request)
    programme = programme_get(programme_id)
    membership_override_clear(membership=membership_get(programme, membership_id), actor=user)
    return membership_get(programme, membership_id)
