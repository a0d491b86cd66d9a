"""Programmes and their tiers: creation and changes with validation."""

from __future__ import annotations

import secrets
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction

from accounts.models import User
from core.errors import BusinessRuleError, Conflict, ValidationFailed
from loyalty.programmes.models import Membership, Programme, Tier, TierChange

QUALIFYING_METRICS = ("revenue_percentile", "engagement_score", "engagement_percentile", "revenue_minor")

# Fields that decide who is held out and how tiers are judged: frozen once the programme has members.
# The primary question is declared before the data come in (a pre-registered analysis): frozen too.
FROZEN_WHEN_ENROLLED = ("seed", "holdout_percent", "qualifying_metric", "primary_metric", "primary_horizon_months")

TIER_FIELDS = (
    "rank",
    "name",
    "threshold",
    "first_response_sla_hours",
    "resolution_sla_hours",
    "monthly_request_allowance",
    "early_access_hours",
    "guests_per_booking",
)


def _validate_programme(values: dict[str, Any]) -> None:
    fields: dict[str, list[str]] = {}
    holdout = values.get("holdout_percent")
    if holdout is not None and not (Decimal("0") <= Decimal(str(holdout)) <= Decimal("50")):
        fields["holdout_percent"] = ["Between 0 and 50."]
    metric = values.get("qualifying_metric")
    if metric is not None and metric not in QUALIFYING_METRICS:
        fields["qualifying_metric"] = [f"One of {', '.join(QUALIFYING_METRICS)}."]
    for name in ("evaluation_cadence_days", "grace_period_days"):
        if values.get(name) is not None and values[name] < 1:
            fields[name] = ["At least 1 day."]
    retention = values.get("expected_retention")
    if retention is not None and not (0 < retention < 1):
        fields["expected_retention"] = ["Strictly between 0 and 1."]
    horizon = values.get("primary_horizon_months")
    if horizon is not None and not (1 <= horizon <= 60):
        fields["primary_horizon_months"] = ["Between 1 and 60 months."]
    if values.get("name") is not None and not values["name"].strip():
        fields["name"] = ["Required."]
    if values.get("seed") is not None and not values["seed"].strip():
        fields["seed"] = ["Must not be blank."]
    if fields:
        raise ValidationFailed("The programme is not valid.", code="invalid_programme", fields=fields)


def _save_unique(obj, *, code: str, field: str, message: str) -> None:
    try:
        with transaction.atomic():
            obj.save()
    except IntegrityError as exc:
        raise Conflict(message, code=code, fields={field: [message]}) from exc


@transaction.atomic
def programme_create(*, created_by: User | None = None, **values: Any) -> Programme:
    _validate_programme(values)
    values = {key: value for key, value in values.items() if value is not None}
    values.setdefault("seed", secrets.token_hex(16))
    programme = Programme(created_by=created_by, **values)
    programme.name = programme.name.strip()
    _save_unique(programme, code="programme_name_taken", field="name", message="A programme has this name.")
    programme.refresh_from_db()
    return programme


@transaction.atomic
def programme_update(*, programme: Programme, **values: Any) -> Programme:
    values = {key: value for key, value in values.items() if value is not None}
    _validate_programme(values)
    programme = Programme.objects.select_for_update().get(pk=programme.pk)
    changed_frozen = [
        name for name in FROZEN_WHEN_ENROLLED if name in values and str(values[name]) != str(getattr(programme, name))
    ]
    if changed_frozen and Membership.objects.filter(programme=programme).exists():
        raise Conflict(
            "The seed, holdout, qualifying metric and primary question cannot change once customers are enrolled.",
            code="programme_has_members",
            fields={name: ["Frozen once customers are enrolled."] for name in changed_frozen},
        )
    for name, value in values.items():
        setattr(programme, name, value.strip() if name == "name" else value)
    _save_unique(programme, code="programme_name_taken", field="name", message="A programme has this name.")
    programme.refresh_from_db()
    return programme


def _validate_ladder(tiers: list[Tier]) -> None:
    """Ranks unique and positive; thresholds strictly increasing with rank; SLA sane; names unique."""
    fields: dict[str, list[str]] = {}
    ordered = sorted(tiers, key=lambda t: t.rank)
    ranks = [t.rank for t in ordered]
    if len(set(ranks)) != len(ranks):
        fields["rank"] = ["Another tier of this programme has this rank."]
    names = [t.name.strip().lower() for t in ordered]
    if len(set(names)) != len(names):
        fields["name"] = ["Another tier of this programme has this name."]
    for lower, higher in zip(ordered, ordered[1:], strict=False):
        if lower.rank != higher.rank and not higher.threshold > lower.threshold:
            fields["threshold"] = [
                f"Thresholds must increase with rank: rank {higher.rank} ({higher.threshold}) must be above "
                f"rank {lower.rank} ({lower.threshold})."
            ]
            break
    for tier in tiers:
        if tier.resolution_sla_hours < tier.first_response_sla_hours:
            fields["resolution_sla_hours"] = ["Must be at least the first-response SLA."]
        if tier.rank < 1:
            fields["rank"] = ["At least 1."]
        if not tier.name.strip():
            fields["name"] = ["Required."]
    if fields:
        code = "tier_rank_taken" if "rank" in fields and len(fields) == 1 else "invalid_tier"
        raise ValidationFailed("The tiers are not valid.", code=code, fields=fields)


@transaction.atomic
def tier_create(*, programme: Programme, **values: Any) -> Tier:
    Programme.objects.select_for_update().get(pk=programme.pk)
    tier = Tier(programme=programme, **{k: v for k, v in values.items() if v is not None})
    tier.name = tier.name.strip()
    _validate_ladder([*Tier.objects.filter(programme=programme), tier])
    tier.save()
    return tier


@transaction.atomic
def tier_update(*, tier: Tier, **values: Any) -> Tier:
    Programme.objects.select_for_update().get(pk=tier.programme_id)
    tier = Tier.objects.get(pk=tier.pk)
    for name, value in values.items():
        if value is not None and name in TIER_FIELDS:
            setattr(tier, name, value.strip() if name == "name" else value)
    others = list(Tier.objects.filter(programme_id=tier.programme_id).exclude(pk=tier.pk))
    _validate_ladder([*others, tier])
    tier.save()
    return tier


@transaction.atomic
def tier_delete(*, tier: Tier) -> None:
    Programme.objects.select_for_update().get(pk=tier.programme_id)
    in_use = (
        Membership.objects.filter(tier=tier).exists()
        or Membership.objects.filter(shadow_tier=tier).exists()
        or Membership.objects.filter(override_tier=tier).exists()
        or TierChange.objects.filter(from_tier=tier).exists()
        or TierChange.objects.filter(to_tier=tier).exists()
    )
    if in_use:
        raise Conflict("This tier has or had members; it cannot be deleted.", code="tier_in_use")
    tier.delete()


def programme_tiers_or_error(programme: Programme) -> list[Tier]:
    tiers = list(Tier.objects.filter(programme=programme).order_by("rank"))
    if not tiers:
        raise BusinessRuleError("The programme has no tiers yet.", code="programme_has_no_tiers")
    return tiers
