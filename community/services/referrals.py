"""Referral codes and attribution.

Who may hold a code in a campaign: its ambassadors (not the held-out nominees), every active treatment member
of the programme when the campaign is open to members, and customers attributed in the campaign (chains).

Attribution rules, checked in this order, each with a stable code:
- the code exists (400 `unknown_code`) and the moment is inside the campaign's window (400 `outside_window`);
- the referred customer is new: joined at or after the campaign started (400 `not_a_new_customer`);
- no self-referral (400 `self_referral`);
- the referrer is not churned and has no ended membership in the programme (400 `referrer_inactive`);
- one attribution per customer, ever: the first valid code wins (409 `already_attributed`). The referred
  customer's row is locked first, and a unique constraint on the referred customer is the backstop.
Attributed customers refer in turn: a referral's generation is its referrer's generation + 1 (1 for a root).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from community.models import Campaign, Nominee, Referral, ReferralCode
from community.services.common import social_interaction
from core.errors import BusinessRuleError, Conflict, NotFound, PremierError
from core.outbox import enqueue
from loyalty.customers.models import Customer, RevenueEntry
from loyalty.ingestion.services.hand_over import REFERRAL_CODE_ATTRIBUTE
from loyalty.programmes.models import Membership

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I
CODE_LENGTH = 8


def _new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def code_holder_eligible(*, campaign: Campaign, customer: Customer) -> bool:
    """May this customer hold a code in this campaign (see the module doc)? Held-out nominees and control
    customers may not, and the answer to them is the same as to strangers."""
    if customer.status != Customer.Status.ACTIVE:
        return False
    if Nominee.objects.filter(campaign=campaign, customer=customer, group=Nominee.Group.AMBASSADOR).exists():
        return True
    if Referral.objects.filter(campaign=campaign, referred=customer).exists():
        return True
    if campaign.open_to_members:
        return Membership.objects.filter(
            programme_id=campaign.programme_id,
            customer=customer,
            group=Membership.Group.TREATMENT,
            status=Membership.Status.ACTIVE,
        ).exists()
    return False


def _user_customer(user) -> Customer:
    customer = Customer.objects.filter(user=user).first()
    if customer is None:
        raise NotFound("Campaign not found.", code="campaign_not_found")
    return customer


@transaction.atomic
def referral_code_get_or_create(*, user, campaign_id: int, now: datetime | None = None) -> ReferralCode:
    """The caller's code in a campaign they may refer in; to anyone else the campaign does not exist (404)."""
    now = now or timezone.now()
    customer = _user_customer(user)
    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is None or not code_holder_eligible(campaign=campaign, customer=customer):
        raise NotFound("Campaign not found.", code="campaign_not_found")
    if now >= campaign.ends_at:
        raise Conflict("The campaign has ended.", code="campaign_ended")
    existing = ReferralCode.objects.filter(campaign=campaign, customer=customer).first()
    if existing is not None:
        return existing
    for _ in range(5):
        try:
            with transaction.atomic():
                return ReferralCode.objects.create(
                    campaign=campaign, customer=customer, code=_new_code(), created_at=now
                )
        except IntegrityError:
            existing = ReferralCode.objects.filter(campaign=campaign, customer=customer).first()
            if existing is not None:  # a concurrent request made it
                return existing
    raise Conflict("Could not allocate a code; try again.", code="code_allocation_failed")  # pragma: no cover


def _referrer_active(campaign: Campaign, referrer: Customer) -> bool:
    if referrer.status != Customer.Status.ACTIVE:
        return False
    return not Membership.objects.filter(
        programme_id=campaign.programme_id, customer=referrer, status=Membership.Status.ENDED
    ).exists()


@transaction.atomic
def referral_attribute(*, customer_id: int, code: str, source: str, at: datetime | None = None) -> Referral:
    """Attribute `customer_id` to the holder of `code` (rules in the module doc)."""
    at = at or timezone.now()
    code_row = (
        ReferralCode.objects.select_related("campaign", "customer").filter(code=(code or "").strip().upper()).first()
    )
    if code_row is None:
        raise BusinessRuleError("This referral code does not exist.", code="unknown_code")
    campaign = code_row.campaign
    if not campaign.starts_at <= at < campaign.ends_at:
        raise BusinessRuleError("This referral code is not valid at this time.", code="outside_window")
    referred = Customer.objects.select_for_update().filter(pk=customer_id).first()
    if referred is None:
        raise NotFound("Customer not found.", code="customer_not_found")
    if referred.joined_at < campaign.starts_at:
        raise BusinessRuleError("Only new customers can be referred.", code="not_a_new_customer")
    referrer = code_row.customer
    if referrer.pk == referred.pk:
        raise BusinessRuleError("A customer cannot refer themselves.", code="self_referral")
    if not _referrer_active(campaign, referrer):
        raise BusinessRuleError("The referrer's code is no longer valid.", code="referrer_inactive")
    previous = Referral.objects.filter(referred_id=referred.pk).first()
    if previous is not None:
        raise Conflict(
            "This customer is already attributed.",
            code="already_attributed",
            fields={"referral_id": previous.pk, "same_code": previous.code_id == code_row.pk},
        )
    parent = Referral.objects.filter(campaign=campaign, referred_id=referrer.pk).first()
    try:
        with transaction.atomic():
            return Referral.objects.create(
                campaign=campaign,
                code=code_row,
                referrer=referrer,
                referred=referred,
                root_id=parent.root_id if parent else referrer.pk,
                generation=parent.generation + 1 if parent else 1,
                source=source,
                attributed_at=at,
                attributed_on=at.astimezone(UTC).date(),
            )
    except IntegrityError:
        raise Conflict("This customer is already attributed.", code="already_attributed") from None


def referral_claim(*, user, code: str, now: datetime | None = None) -> Referral:
    """The sign-up flow: the logged-in customer enters the code they were given."""
    customer = Customer.objects.filter(user=user).first()
    if customer is None:
        raise BusinessRuleError("Your account is not linked to a customer yet.", code="no_customer")
    return referral_attribute(customer_id=customer.pk, code=code, source=Referral.Source.SIGNUP, at=now)


def customers_ingested_hand_over(customer_ids: list[int]) -> None:
    """Registered with loyalty's ingestion: attribute the codes that arrived with customers, in a task."""
    at = timezone.now().isoformat()
    for customer_id in customer_ids:
        enqueue("community.tasks.referral_attribute_ingested", customer_id, at)


def referral_attribute_ingested(*, customer_id: int, at: datetime) -> str:
    """Attribute an ingested customer by the code on their attributes. Answers the outcome's code; a refused
    code changes nothing, and a second run finds the customer attributed."""
    customer = Customer.objects.filter(pk=customer_id).first()
    code = (customer.attributes or {}).get(REFERRAL_CODE_ATTRIBUTE) if customer else None
    if not isinstance(code, str) or not code:
        return "no_code"
    try:
        referral_attribute(customer_id=customer_id, code=code, source=Referral.Source.INGESTION, at=at)
    except PremierError as exc:
        return exc.code
    return "attributed"


@transaction.atomic
def conversions_mark(*, now: datetime | None = None) -> int:
    """A referral converts when its customer has revenue on or after the day of attribution. Marks new
    conversions (set-based) and records a social interaction for each referrer. Safe to run twice."""
    now = now or timezone.now()
    revenue_since = RevenueEntry.objects.filter(
        customer_id=OuterRef("referred_id"), period__gte=OuterRef("attributed_on")
    )
    new = list(
        Referral.objects.filter(converted_at__isnull=True)
        .filter(Exists(revenue_since))
        .values_list("id", "referrer_id")
    )
    ids = [pk for pk, _ in new]
    for start in range(0, len(ids), 5000):
        Referral.objects.filter(pk__in=ids[start : start + 5000], converted_at__isnull=True).update(converted_at=now)
    for pk, referrer_id in new:
        social_interaction(customer_id=referrer_id, kind="referral_converted", at=now, ref=f"referral-{pk}")
    return len(ids)
