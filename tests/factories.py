"""Shared factories. App-specific factories live beside their tests and may build on these."""

from __future__ import annotations

from datetime import UTC, datetime

import factory
from allauth.account.models import EmailAddress
from django.contrib.auth.models import Group

from accounts.models import User
from loyalty.models import Customer, Membership, Programme, Tier

TEST_PASSWORD = "a-long-test-password-42"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.test")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    password = factory.PostGenerationMethodCall("set_password", TEST_PASSWORD)

    @factory.post_generation
    def roles(self, create, extracted, **kwargs):
        self.save()
        EmailAddress.objects.create(user=self, email=self.email, verified=True, primary=True)
        for role in extracted or []:
            self.groups.add(Group.objects.get_or_create(name=role)[0])


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    external_id = factory.Sequence(lambda n: f"C{n:07d}")
    name = factory.Faker("name")
    email = factory.Sequence(lambda n: f"customer{n}@example.test")
    birth_year = 1980
    region = "north"
    joined_at = datetime(2020, 1, 1, tzinfo=UTC)


class ProgrammeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Programme

    name = factory.Sequence(lambda n: f"Programme {n}")
    seed = factory.Sequence(lambda n: f"seed-{n}")
    holdout_percent = 10


class TierFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tier

    programme = factory.SubFactory(ProgrammeFactory)
    rank = factory.Sequence(lambda n: n + 1)
    name = factory.Sequence(lambda n: f"Tier {n}")
    threshold = 0.0
    first_response_sla_hours = 4
    resolution_sla_hours = 48
    monthly_request_allowance = 5
    early_access_hours = 0
    guests_per_booking = 1


class MembershipFactory(factory.django.DjangoModelFactory):
    """A treatment member by default; `control=True` makes a held-out customer with a shadow tier."""

    class Meta:
        model = Membership

    class Params:
        control = factory.Trait(
            group=Membership.Group.CONTROL,
            status=Membership.Status.HOLDOUT,
            tier=None,
            shadow_tier=factory.SubFactory(TierFactory, programme=factory.SelfAttribute("..programme")),
        )

    programme = factory.SubFactory(ProgrammeFactory)
    customer = factory.SubFactory(CustomerFactory)
    group = Membership.Group.TREATMENT
    status = Membership.Status.ACTIVE
    tier = factory.SubFactory(TierFactory, programme=factory.SelfAttribute("..programme"))
    enrolled_at = datetime(2026, 1, 1, tzinfo=UTC)
    assignment_seed = factory.SelfAttribute("programme.seed")
    assignment_bucket = 50.0
    # The baseline snapshot the enrolment writes.
    region_at_enrolment = factory.LazyAttribute(lambda m: m.customer.region)
    age_at_enrolment = factory.LazyAttribute(
        lambda m: m.enrolled_at.year - m.customer.birth_year if m.customer.birth_year else None
    )
