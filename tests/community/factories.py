"""Community test helpers: members linked to users, open rounds, ideas, campaigns with codes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import factory
from django.utils import timezone

from community.models import Campaign, Idea, IdeaStatus, Nominee, ReferralCode, Round
from loyalty.programmes.services.assignment import assignment_bucket_int
from tests.factories import CustomerFactory, MembershipFactory, TierFactory, UserFactory


def link(customer, user=None):
    user = user or UserFactory(roles=["member"])
    customer.user = user
    customer.save(update_fields=["user"])
    return user


def make_member(*, name: str = "Ada Lovelace", tier=None, **membership_kwargs):
    """(user, membership): a user whose customer is an active treatment member."""
    tier = tier or TierFactory()
    membership = MembershipFactory(programme=tier.programme, tier=tier, customer__name=name, **membership_kwargs)
    return link(membership.customer), membership


def make_control(*, name: str = "Carl Control", programme=None):
    """(user, membership): a held-out (control) customer with a login."""
    kwargs = {"programme": programme} if programme else {}
    membership = MembershipFactory(control=True, customer__name=name, **kwargs)
    return link(membership.customer), membership


def make_stranger(name: str = "Sam Stranger"):
    """A user with a customer record but no membership."""
    return link(CustomerFactory(name=name))


class RoundFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Round

    title = factory.Sequence(lambda n: f"Round {n}")
    starts_at = factory.LazyFunction(lambda: timezone.now() - timedelta(days=1))
    ends_at = factory.LazyFunction(lambda: timezone.now() + timedelta(days=30))
    budget = Decimal("1000.00")


class IdeaFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Idea

    round = factory.SubFactory(RoundFactory)
    author = factory.SubFactory(CustomerFactory)
    title = factory.Sequence(lambda n: f"Idea {n}")
    body = "Make it better."
    category = "service"
    status = IdeaStatus.OPEN
    created_at = factory.LazyFunction(timezone.now)
    updated_at = factory.LazyFunction(timezone.now)


class CampaignFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Campaign

    programme = factory.SubFactory("tests.factories.ProgrammeFactory")
    name = factory.Sequence(lambda n: f"Campaign {n}")
    starts_at = datetime(2026, 1, 1, tzinfo=UTC)
    ends_at = datetime(2027, 1, 1, tzinfo=UTC)
    max_ambassadors = 100


def ambassador(campaign, membership, *, group=Nominee.Group.AMBASSADOR, code: str | None = None):
    """A nominee (ambassador by default) of `campaign`, with a referral code when `code` is given."""
    nominee = Nominee.objects.create(
        campaign=campaign,
        customer=membership.customer,
        membership=membership,
        group=group,
        assignment_bucket=assignment_bucket_int(campaign.assignment_seed, membership.customer_id),
        nominated_at=campaign.starts_at,
    )
    if code:
        ReferralCode.objects.create(
            campaign=campaign, customer=membership.customer, code=code, created_at=campaign.starts_at
        )
    return nominee


def code_for(campaign, customer, code: str) -> ReferralCode:
    return ReferralCode.objects.create(campaign=campaign, customer=customer, code=code, created_at=campaign.starts_at)


def new_customer(campaign, **kwargs):
    """A customer who joined after the campaign started (referable)."""
    return CustomerFactory(joined_at=campaign.starts_at + timedelta(days=1), **kwargs)
