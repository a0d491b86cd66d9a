"""The loyalty admin: customers, programmes, tiers, memberships, tier changes and retention outcomes. Every
changelist renders with search and filters in a number of queries that does not grow with the rows shown;
append-only data (tier changes, outcomes) and memberships are read-only."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from loyalty.models import Customer, Membership, Programme, RetentionOutcome, Tier, TierChange
from tests.factories import CustomerFactory, MembershipFactory, ProgrammeFactory, TierFactory, UserFactory

pytestmark = pytest.mark.django_db

AT = datetime(2026, 1, 1, tzinfo=UTC)

# changelist: (search and filters, rows shown unfiltered and filtered after make_rows(2) and make_rows(8))
CHANGELISTS = {
    "customer": ("?q=Ada&status__exact=active&region__exact=north", 24, 24),
    "programme": ("?q=Programme&status__exact=active", 4, 4),
    "tier": ("?q=Gold", 12, 4),
    "membership": ("?q=Ada&group__exact=treatment&status__exact=active", 24, 20),
    "tierchange": ("?q=Ada&reason__exact=upgrade", 40, 20),
    "retentionoutcome": ("?q=Ada&outcome__exact=churned&source__exact=ingest", 40, 20),
}


def make_rows(n: int) -> None:
    """n members across two programmes, each with a linked login, tier changes and outcomes (one corrected)."""
    for _ in range(2):
        programme = ProgrammeFactory()
        silver = TierFactory(programme=programme, rank=1, name=f"Silver {programme.pk}")
        gold = TierFactory(programme=programme, rank=2, name=f"Gold {programme.pk}")
        for i in range(n):
            customer = CustomerFactory(name=f"Ada {i}", user=UserFactory())
            membership = MembershipFactory(
                programme=programme,
                customer=customer,
                tier=gold,
                override_tier=silver,
                override_expires_at=AT + timedelta(days=30),
            )
            TierChange.objects.create(membership=membership, from_tier=None, to_tier=silver, reason="enrolment", at=AT)
            TierChange.objects.create(
                membership=membership, from_tier=silver, to_tier=gold, reason="upgrade", at=AT, actor=UserFactory()
            )
            first = RetentionOutcome.objects.create(
                membership=membership, observed_at=AT, outcome="churned", source="ingest", revenue_change=Decimal("-3")
            )
            RetentionOutcome.objects.create(
                membership=membership, observed_at=AT, outcome="retained", source="manual", supersedes=first
            )
        MembershipFactory(programme=programme, control=True, customer__name="Ada control")


def queries_for(client, url: str) -> tuple[int, int]:
    """Queries the changelist page took, and how many rows it found."""
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return len(ctx.captured_queries), response.context["cl"].result_count


@pytest.mark.parametrize("model", list(CHANGELISTS))
def test_changelist_renders_with_search_and_filters_in_bounded_queries(admin_client, model):
    query, rows, filtered_rows = CHANGELISTS[model]
    url = f"/admin/loyalty/{model}/"
    make_rows(2)
    few, _ = queries_for(admin_client, url)
    few_filtered, _ = queries_for(admin_client, url + query)
    make_rows(8)
    assert queries_for(admin_client, url) == (few, rows)
    assert queries_for(admin_client, url + query) == (few_filtered, filtered_rows)
    assert max(few, few_filtered) <= 12


def test_change_pages_render_and_append_only_data_cannot_be_changed(admin_client):
    make_rows(1)
    membership = Membership.objects.filter(group="treatment").first()
    change = TierChange.objects.filter(membership=membership).first()
    outcome = RetentionOutcome.objects.filter(membership=membership).first()
    for model, pk in (
        ("customer", membership.customer_id),
        ("programme", membership.programme_id),
        ("tier", membership.tier_id),
        ("membership", membership.pk),
        ("tierchange", change.pk),
        ("retentionoutcome", outcome.pk),
    ):
        response = admin_client.get(f"/admin/loyalty/{model}/{pk}/change/")
        assert response.status_code == 200, model
    # Membership detail shows its tier history.
    assert b"Upgrade" in admin_client.get(f"/admin/loyalty/membership/{membership.pk}/change/").content
    for model, pk in (("tierchange", change.pk), ("retentionoutcome", outcome.pk), ("membership", membership.pk)):
        assert admin_client.get(f"/admin/loyalty/{model}/add/").status_code == 403
        assert admin_client.post(f"/admin/loyalty/{model}/{pk}/change/", {"reason": "override"}).status_code == 403
        assert admin_client.post(f"/admin/loyalty/{model}/{pk}/delete/", {"post": "yes"}).status_code == 403
    outcome.refresh_from_db()
    assert (outcome.outcome, RetentionOutcome.objects.count(), TierChange.objects.count()) == ("churned", 4, 4)
    # Customers, programmes and tiers are managed here.
    assert admin_client.get("/admin/loyalty/customer/add/").status_code == 200
    assert admin_client.get("/admin/loyalty/programme/add/").status_code == 200
    assert admin_client.get("/admin/loyalty/tier/add/").status_code == 200


def test_programme_seed_and_holdout_are_locked_once_members_are_enrolled(admin_client):
    empty = ProgrammeFactory()
    enrolled = MembershipFactory().programme
    assert b'name="seed"' in admin_client.get(f"/admin/loyalty/programme/{empty.pk}/change/").content
    page = admin_client.get(f"/admin/loyalty/programme/{enrolled.pk}/change/").content
    assert b'name="seed"' not in page and b'name="holdout_percent"' not in page
    assert (Customer.objects.count(), Programme.objects.count(), Tier.objects.count()) == (1, 2, 1)
