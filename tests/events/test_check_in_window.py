"""Check-in opens a set time before the event starts (EVENT_CHECKIN_OPENS_HOURS, default 2) and closes after
the completion grace; outside the window partners get a 409 with a code and a message saying when it opens."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from core.errors import Conflict
from events.services.bookings import booking_create
from events.services.partners import booking_check_in
from loyalty.models import Interaction
from tests.conftest import api_as
from tests.events.factories import EventFactory, member, partner_staff

pytestmark = pytest.mark.django_db


def test_check_in_opens_setting_defaults_to_two_hours():
    assert settings.EVENT_CHECKIN_OPENS_HOURS == 2


def test_check_in_weeks_before_the_event_is_refused_with_when_it_opens():
    staff = partner_staff()
    starts = (timezone.now() + timedelta(days=21)).replace(microsecond=0)
    event = EventFactory(partner=staff.partner_staff.partner, starts_at=starts)
    booking = booking_create(membership=member()[1], event_id=event.pk)
    response = api_as(staff).post(f"partner/bookings/{booking.pk}/check-in")
    assert response.status_code == 409
    opens = starts - timedelta(hours=2)
    assert response.json() == {
        "detail": f"Check-in opens at {opens:%Y-%m-%d %H:%M} UTC, 2 hour(s) before the event starts.",
        "code": "check_in_not_open",
        "fields": {"opens_at": [opens.isoformat()]},
    }
    booking.refresh_from_db()
    assert (booking.status, booking.checked_in_at) == ("confirmed", None)
    assert Interaction.objects.count() == 0
    # A booking that can never be checked in says so, whatever the time.
    full = EventFactory(partner=event.partner, starts_at=starts, capacity=1, seats_booked=1)
    waiting = booking_create(membership=member()[1], event_id=full.pk, join_waitlist=True)
    refused = api_as(staff).post(f"partner/bookings/{waiting.pk}/check-in")
    assert (refused.status_code, refused.json()["code"]) == (409, "booking_not_checkable")


def test_check_in_window_edges_follow_the_setting(settings):
    settings.EVENT_CHECKIN_OPENS_HOURS = 3
    staff = partner_staff()
    event = EventFactory(partner=staff.partner_staff.partner)
    booking = booking_create(membership=member()[1], event_id=event.pk)
    just_before = event.starts_at - timedelta(hours=3, seconds=1)
    with pytest.raises(Conflict) as early:
        booking_check_in(partner=event.partner, booking_id=booking.pk, by=staff, now=just_before)
    assert early.value.code == "check_in_not_open"
    assert early.value.fields == {"opens_at": [(event.starts_at - timedelta(hours=3)).isoformat()]}
    assert "3 hour(s) before the event starts" in early.value.detail
    checked = booking_check_in(
        partner=event.partner, booking_id=booking.pk, by=staff, now=event.starts_at - timedelta(hours=3)
    )
    assert (checked.status, checked.checked_in_at) == ("attended", event.starts_at - timedelta(hours=3))
