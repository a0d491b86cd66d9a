from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import factory

from events.models import Event, Partner, PartnerStaff
from tests.factories import CustomerFactory, MembershipFactory, ProgrammeFactory, TierFactory, UserFactory

# Tests run on a fixed clock; events are far enough in the future that "now" (the API's clock) is before them.
NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)


class PartnerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Partner

    name = factory.Sequence(lambda n: f"Partner {n}")
    contact_email = factory.Sequence(lambda n: f"partner{n}@example.test")


class EventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Event

    partner = factory.SubFactory(PartnerFactory)
    title = factory.Sequence(lambda n: f"Chef's table {n}")
    venue = "Rooftop"
    starts_at = NOW + timedelta(days=30)
    ends_at = factory.LazyAttribute(lambda o: o.starts_at + timedelta(hours=3))
    capacity = 10
    min_tier_rank = 1
    price = Decimal("0")
    currency = "EUR"
    booking_opens_at = datetime(2020, 1, 1, tzinfo=UTC)
    status = Event.Status.PUBLISHED


def partner_staff(partner=None):
    user = UserFactory(roles=["partner_staff"])
    PartnerStaff.objects.create(user=user, partner=partner or PartnerFactory())
    return user


def member(*, tier=None, rank: int = 1, guests: int = 1, early_access_hours: int = 0, programme=None, **tier_kwargs):
    """A user with role member and an active treatment membership at `tier` (or a new tier of `rank`)."""
    if tier is None:
        programme = programme or ProgrammeFactory()
        tier = TierFactory(
            programme=programme,
            rank=rank,
            guests_per_booking=guests,
            early_access_hours=early_access_hours,
            **tier_kwargs,
        )
    user = UserFactory(roles=["member"])
    customer = CustomerFactory(user=user)
    membership = MembershipFactory(programme=tier.programme, customer=customer, tier=tier)
    return user, membership


def control_member(programme=None):
    user = UserFactory(roles=["member"])
    customer = CustomerFactory(user=user)
    membership = MembershipFactory(programme=programme or ProgrammeFactory(), customer=customer, control=True)
    return user, membership
