"""The manager's member timeline brings loyalty, concierge and events together (sources registered by the apps)."""

import pytest

from events.services.bookings import booking_create
from tests.concierge.factories import NOW, make_member, make_request
from tests.events.factories import EventFactory

pytestmark = pytest.mark.django_db


def test_timeline_shows_concierge_requests_and_event_bookings(manager_api):
    user, membership = make_member(name="Grace Hopper")
    request = make_request(user, subject="Opera tickets")
    event = EventFactory(title="Vineyard dinner", min_tier_rank=membership.tier.rank)
    booking = booking_create(membership=membership, event_id=event.pk, guests=0, now=NOW)

    response = manager_api.get(f"retention/customers/{membership.customer_id}/timeline")

    assert response.status_code == 200
    by_kind = {item["kind"]: item for item in response.json()["items"]}
    assert by_kind["concierge_request"]["ref"] == str(request.pk)
    assert "Opera tickets" in by_kind["concierge_request"]["summary"]
    assert by_kind["event_booking"]["ref"] == f"booking:{booking.pk}"
    assert "Vineyard dinner" in by_kind["event_booking"]["summary"]
