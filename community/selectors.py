"""Community reads: idea lists sorted by votes, idea and poll pages, the member's community view, manager lists
and the campaign report. Lists answer in a constant number of queries."""

from __future__ import annotations

import math
from datetime import datetime
from decimal import Decimal

from django.db.models import Count, Exists, F, Max, OuterRef, Prefetch, Q, QuerySet, Sum, Value
from django.utils import timezone

from community.models import (
    PUBLIC_IDEA_STATUSES,
    Campaign,
    Comment,
    Idea,
    IdeaStatus,
    Nominee,
    Poll,
    PollAnswer,
    PollOption,
    Referral,
    ReferralCode,
    Round,
    Vote,
)
from core.errors import NotFound
from loyalty.customers.models import Customer, RevenueEntry
from loyalty.programmes.models import Membership
from loyalty.programmes.services.assignment import Z_95_TWO_SIDED


def display_name(full_name: str) -> str:
    """'Ada Lovelace' -> 'Ada L.': public pages never show more of a member."""
    parts = full_name.split()
    if not parts:
        return "A member"
    if len(parts) == 1:
        return parts[0]
    return f"{parts[0]} {parts[-1][0].upper()}."


def viewer_customer_id(user) -> int | None:
    """The caller's customer id, whatever their membership (used only to mark their own votes and answers)."""
    return Customer.objects.filter(user=user).values_list("id", flat=True).first()


# ------------------------------------------------------------------------------------------------ ideas


def rounds() -> QuerySet[Round]:
    return Round.objects.order_by("-starts_at", "-id")


def round_get(*, round_id: int) -> Round:
    round_ = Round.objects.filter(pk=round_id).first()
    if round_ is None:
        raise NotFound("Round not found.", code="round_not_found")
    return round_


def _with_my_vote(qs: QuerySet[Idea], customer_id: int | None) -> QuerySet[Idea]:
    if customer_id is None:
        return qs.annotate(my_vote=Value(False))
    return qs.annotate(my_vote=Exists(Vote.objects.filter(idea_id=OuterRef("pk"), customer_id=customer_id)))


def round_ideas(
    *, round_id: int, customer_id: int | None = None, sort: str = "votes", category: str | None = None
) -> QuerySet[Idea]:
    """Visible ideas of a round (opened by a manager, not hidden), most votes first (or newest first)."""
    round_get(round_id=round_id)
    qs = Idea.objects.filter(round_id=round_id, hidden=False, status__in=PUBLIC_IDEA_STATUSES).select_related("author")
    if category:
        qs = qs.filter(category=category)
    qs = _with_my_vote(qs, customer_id)
    return qs.order_by("-created_at", "-id") if sort == "new" else qs.order_by("-vote_count", "-id")


def idea_get(*, idea_id: int, customer_id: int | None = None) -> Idea:
    """A visible idea with its visible comments; a submitted idea only for its author; else 404."""
    comments = Comment.objects.filter(hidden=False).select_related("author").order_by("created_at", "id")
    qs = _with_my_vote(Idea.objects.select_related("author", "round"), customer_id).prefetch_related(
        Prefetch("comments", queryset=comments, to_attr="visible_comments")
    )
    visible = Q(status__in=PUBLIC_IDEA_STATUSES)
    if customer_id is not None:
        visible |= Q(status=IdeaStatus.SUBMITTED, author_id=customer_id)
    idea = qs.filter(visible, pk=idea_id, hidden=False).first()
    if idea is None:
        raise NotFound("Idea not found.", code="idea_not_found")
    return idea


def manager_round_ideas(*, round_id: int, status: str | None = None, hidden: bool | None = None) -> QuerySet[Idea]:
    """Every idea of a round for moderation, submitted and hidden ones included."""
    round_get(round_id=round_id)
    qs = Idea.objects.filter(round_id=round_id).select_related("author")
    if status:
        qs = qs.filter(status=status)
    if hidden is not None:
        qs = qs.filter(hidden=hidden)
    return qs.order_by("-vote_count", "-id")


def manager_idea_get(*, idea_id: int) -> Idea:
    idea = Idea.objects.select_related("author").filter(pk=idea_id).first()
    if idea is None:
        raise NotFound("Idea not found.", code="idea_not_found")
    return idea


def my_ideas(*, customer_id: int) -> QuerySet[Idea]:
    return _with_my_vote(Idea.objects.filter(author_id=customer_id, hidden=False).select_related("author"), None)


# ------------------------------------------------------------------------------------------------ polls


def polls(*, now: datetime | None = None) -> QuerySet[Poll]:
    return Poll.objects.filter(hidden=False).order_by("-created_at", "-id")


def poll_get(*, poll_id: int, customer_id: int | None, now: datetime | None = None) -> dict:
    """A poll with its options; the counts only once the caller answered or the poll closed."""
    now = now or timezone.now()
    comments = Comment.objects.filter(hidden=False).select_related("author").order_by("created_at", "id")
    poll = (
        Poll.objects.filter(pk=poll_id, hidden=False)
        .prefetch_related(
            Prefetch("options", queryset=PollOption.objects.order_by("position")),
            Prefetch("comments", queryset=comments, to_attr="visible_comments"),
        )
        .first()
    )
    if poll is None:
        raise NotFound("Poll not found.", code="poll_not_found")
    mine = (
        PollAnswer.objects.filter(poll=poll, customer_id=customer_id).values_list("option_id", flat=True).first()
        if customer_id is not None
        else None
    )
    closed = now >= poll.closes_at
    show = closed or mine is not None
    options = list(poll.options.all())
    total = sum(o.answer_count for o in options)
    return {
        "id": poll.pk,
        "kind": poll.kind,
        "title": poll.title,
        "body": poll.body,
        "closes_at": poll.closes_at,
        "closed": closed,
        "my_option_id": mine,
        "results_visible": show,
        "total_answers": total if show else None,
        "options": [{"id": o.pk, "label": o.label, "answers": o.answer_count if show else None} for o in options],
        "comments": poll.visible_comments,
    }


# -------------------------------------------------------------------------------------- member view


def member_community(*, user, now: datetime | None = None) -> dict:
    """The caller's ambassador status and campaigns. Held-out nominees and control customers see exactly what a
    stranger sees: nothing about any campaign."""
    now = now or timezone.now()
    customer = Customer.objects.filter(user=user).first()
    if customer is None:
        return {"ambassador": False, "campaigns": []}
    codes = dict(ReferralCode.objects.filter(customer=customer).values_list("campaign_id", "code"))
    entries: dict[int, dict] = {}
    nominations = Nominee.objects.filter(
        customer=customer, group=Nominee.Group.AMBASSADOR, membership__status=Membership.Status.ACTIVE
    ).select_related("campaign")
    for n in nominations:
        entries[n.campaign_id] = _campaign_entry(n.campaign, "ambassador", n.received, n.received_at, codes, now)
    open_campaigns = Campaign.objects.filter(
        open_to_members=True,
        ends_at__gt=now,
        programme__memberships__customer=customer,
        programme__memberships__group=Membership.Group.TREATMENT,
        programme__memberships__status=Membership.Status.ACTIVE,
    ).exclude(pk__in=list(entries))
    for campaign in open_campaigns:
        entries[campaign.pk] = _campaign_entry(campaign, "member", "", None, codes, now)
    for referral in Referral.objects.filter(referred=customer).select_related("campaign"):
        if referral.campaign_id not in entries:
            entries[referral.campaign_id] = _campaign_entry(referral.campaign, "referred", "", None, codes, now)
    ordered = sorted(entries.values(), key=lambda e: (e["ends_at"], e["campaign_id"]), reverse=True)
    return {"ambassador": any(e["role"] == "ambassador" for e in ordered), "campaigns": ordered}


def _campaign_entry(campaign: Campaign, role: str, received: str, received_at, codes: dict, now: datetime) -> dict:
    return {
        "campaign_id": campaign.pk,
        "name": campaign.name,
        "description": campaign.description,
        "starts_at": campaign.starts_at,
        "ends_at": campaign.ends_at,
        "active": campaign.starts_at <= now < campaign.ends_at,
        "role": role,
        "received": received,
        "received_at": received_at,
        "referral_code": codes.get(campaign.pk),
    }


# ------------------------------------------------------------------------------------------ manager


def campaigns() -> QuerySet[Campaign]:
    return (
        Campaign.objects.select_related("programme")
        .annotate(nominee_count=Count("nominees", distinct=True))
        .order_by("-starts_at", "-id")
    )


def campaign_get(*, campaign_id: int) -> Campaign:
    campaign = Campaign.objects.select_related("programme").filter(pk=campaign_id).first()
    if campaign is None:
        raise NotFound("Campaign not found.", code="campaign_not_found")
    return campaign


def campaign_nominees(*, campaign_id: int, group: str | None = None) -> QuerySet[Nominee]:
    campaign_get(campaign_id=campaign_id)
    qs = Nominee.objects.filter(campaign_id=campaign_id).select_related("customer")
    if group:
        qs = qs.filter(group=group)
    return qs.order_by("rank", "id")


def _mean_var(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return mean, var


def uplift(treated: list[float], held_out: list[float]) -> dict:
    """Difference of means (ambassadors minus held out) with a 95% Welch (normal) interval."""
    out = {
        "ambassadors": len(treated),
        "held_out": len(held_out),
        "ambassador_mean": None,
        "held_out_mean": None,
        "difference": None,
        "ci_low": None,
        "ci_high": None,
    }
    if not treated or not held_out:
        return out
    mt, vt = _mean_var(treated)
    mh, vh = _mean_var(held_out)
    diff = mt - mh
    se = math.sqrt(vt / len(treated) + vh / len(held_out))
    out.update(
        ambassador_mean=round(mt, 2),
        held_out_mean=round(mh, 2),
        difference=round(diff, 2),
        ci_low=round(diff - Z_95_TWO_SIDED * se, 2),
        ci_high=round(diff + Z_95_TWO_SIDED * se, 2),
    )
    return out


def viral_coefficients(rows: list[tuple[int, int, int]]) -> tuple[list[dict], float | None]:
    """From (generation, referrers, converted) rows: K per generation = converted ÷ distinct referrers of that
    generation's referrals, and overall K = all converted ÷ all (generation, referrer) pairs."""
    per_gen = [
        {"generation": g, "referrers": r, "converted": c, "k": round(c / r, 4) if r else None}
        for g, r, c in sorted(rows)
    ]
    referrers = sum(r for _, r, _ in rows)
    converted = sum(c for _, _, c in rows)
    return per_gen, (round(converted / referrers, 4) if referrers else None)


def _money(value) -> Decimal:
    return Decimal(value or 0).quantize(Decimal("0.01"))


def campaign_report(*, campaign_id: int, ambassadors_limit: int = 100) -> dict:
    """Referrals and conversions per ambassador (chain roots), chain depth distribution, viral coefficient K per
    generation, revenue of referred customers since attribution, and the uplift of ambassadors against the
    held-out nominees (revenue per nominee since the campaign started: own plus their chain's referred
    customers'), with a 95% interval. Aggregated in the database; constant number of queries."""
    campaign = campaign_get(campaign_id=campaign_id)
    referrals = Referral.objects.filter(campaign=campaign)
    converted = Q(converted_at__isnull=False)
    depth = list(
        referrals.values("generation")
        .annotate(
            referrals=Count("id"),
            converted=Count("id", filter=converted),
            referrers=Count("referrer_id", distinct=True),
        )
        .order_by("generation")
    )
    k_per_generation, k = viral_coefficients([(d["generation"], d["referrers"], d["converted"]) for d in depth])
    per_root = (
        referrals.values("root_id")
        .annotate(
            direct=Count("id", filter=Q(generation=1)),
            chain=Count("id"),
            converted_direct=Count("id", filter=Q(generation=1) & converted),
            converted_chain=Count("id", filter=converted),
            max_depth=Max("generation"),
        )
        .order_by("-chain", "root_id")
    )
    top = list(per_root[:ambassadors_limit])
    names = dict(Customer.objects.filter(pk__in=[r["root_id"] for r in top]).values_list("id", "name"))
    groups = dict(Nominee.objects.filter(campaign=campaign, customer_id__in=names).values_list("customer_id", "group"))
    chain_revenue = dict(
        RevenueEntry.objects.filter(
            customer__community_referral__campaign=campaign,
            period__gte=F("customer__community_referral__attributed_on"),
        )
        .values_list("customer__community_referral__root_id")
        .annotate(total=Sum("amount"))
        .values_list("customer__community_referral__root_id", "total")
    )
    nominees = list(Nominee.objects.filter(campaign=campaign).values_list("customer_id", "group"))
    own_revenue = dict(
        RevenueEntry.objects.filter(
            customer_id__in=Nominee.objects.filter(campaign=campaign).values("customer_id"),
            period__gte=campaign.starts_at.date(),
        )
        .values_list("customer_id")
        .annotate(total=Sum("amount"))
        .values_list("customer_id", "total")
    )
    outcome = {
        g: [float(own_revenue.get(c, 0) + chain_revenue.get(c, 0)) for c, grp in nominees if grp == g]
        for g in (Nominee.Group.AMBASSADOR, Nominee.Group.HELD_OUT)
    }
    totals = referrals.aggregate(referrals=Count("id"), converted=Count("id", filter=converted))
    return {
        "campaign_id": campaign.pk,
        "name": campaign.name,
        "nominees": len(nominees),
        "ambassadors": len(outcome[Nominee.Group.AMBASSADOR]),
        "held_out": len(outcome[Nominee.Group.HELD_OUT]),
        "referrals": totals["referrals"],
        "conversions": totals["converted"],
        "referred_revenue": str(_money(sum(chain_revenue.values(), Decimal(0)))),
        "per_ambassador": [
            {
                "customer_id": r["root_id"],
                "name": display_name(names.get(r["root_id"], "")),
                "nominee_group": groups.get(r["root_id"], ""),
                "direct_referrals": r["direct"],
                "chain_referrals": r["chain"],
                "direct_conversions": r["converted_direct"],
                "chain_conversions": r["converted_chain"],
                "max_depth": r["max_depth"],
                "chain_revenue": str(_money(chain_revenue.get(r["root_id"], 0))),
            }
            for r in top
        ],
        "depth_distribution": [
            {"generation": d["generation"], "referrals": d["referrals"], "converted": d["converted"]} for d in depth
        ],
        "k_per_generation": k_per_generation,
        "k": k,
        "uplift": uplift(outcome[Nominee.Group.AMBASSADOR], outcome[Nominee.Group.HELD_OUT]),
    }


def timeline_entries(*, customer_id: int) -> list[dict]:
    """Nominations, the customer's own attribution and their ideas, for the member timeline (3 queries)."""
    entries = [
        {
            "at": n.nominated_at,
            "kind": "community_nomination",
            "summary": f"Nominated for campaign {n.campaign.name} ({n.get_group_display().lower()})",
            "ref": f"campaign:{n.campaign_id}",
        }
        for n in Nominee.objects.filter(customer_id=customer_id).select_related("campaign")
    ]
    entries += [
        {
            "at": r.attributed_at,
            "kind": "community_referred",
            "summary": f"Referred in campaign {r.campaign.name} (generation {r.generation})",
            "ref": f"referral:{r.pk}",
        }
        for r in Referral.objects.filter(referred_id=customer_id).select_related("campaign")
    ]
    entries += [
        {
            "at": i.created_at,
            "kind": "community_idea",
            "summary": f"Idea '{i.title}' ({i.status}, {i.vote_count} votes)",
            "ref": f"idea:{i.pk}",
        }
        for i in Idea.objects.filter(author_id=customer_id)
    ]
    return entries
