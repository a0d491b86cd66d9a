"""A confirmed booking sends one confirmation email to the member's contact address: a free booking at once,
a paid one when its payment succeeds; never twice (retries, replays, duplicate webhooks, a task run again)."""

from decimal import Decimal

import pytest
from django.core import mail

from events.models import Booking
from events.services.bookings import booking_create
from events.tasks import booking_notify
from tests.conftest import api_as
from tests.events.factories import EventFactory, member
from tests.events.stripe_fake import intent_object
from tests.events.test_payments import deliver

pytestmark = pytest.mark.django_db


def test_free_booking_is_confirmed_by_email_once(django_capture_on_commit_callbacks):
    user, _ = member(guests=1)
    event = EventFactory(title="Chef's table", venue="Rooftop", capacity=5)
    api = api_as(user)
    with django_capture_on_commit_callbacks(execute=True):
        first = api.post(f"events/{event.pk}/bookings", {"guests": 1}, headers={"Idempotency-Key": "b1"})
        replay = api.post(f"events/{event.pk}/bookings", {"guests": 1}, headers={"Idempotency-Key": "b1"})
    assert first.status_code == replay.status_code == 201
    assert [(m.to, m.subject, m.body) for m in mail.outbox] == [
        (
            [user.email],
            "Booking confirmed: Chef's table",
            f"Your booking for Chef's table on {event.starts_at:%Y-%m-%d %H:%M} UTC at Rooftop is confirmed "
            "(2 seat(s)). We look forward to seeing you.",
        )
    ]
    booking = Booking.objects.get(pk=first.json()["id"])
    assert booking.confirmation_emailed_at is not None
    # The task run again (a redelivered message) sends nothing.
    assert booking_notify(booking.pk, "confirmed") is False
    assert len(mail.outbox) == 1


def test_paid_booking_is_confirmed_by_email_when_paid_and_never_twice(django_capture_on_commit_callbacks):
    user, _ = member()
    event = EventFactory(title="Wine tasting", venue="", price=Decimal("25.5"), capacity=5)
    with django_capture_on_commit_callbacks(execute=True):
        held = api_as(user).post(f"events/{event.pk}/bookings", {}).json()
    assert (held["status"], len(mail.outbox)) == ("held", 0)
    booking = Booking.objects.get(pk=held["id"])
    paid = intent_object(booking.payment_intent_id, status="succeeded", amount=2550)
    with django_capture_on_commit_callbacks(execute=True):
        assert deliver("evt_1", "payment_intent.succeeded", paid).json()["outcome"] == "confirmed"
        assert deliver("evt_1", "payment_intent.succeeded", paid).json()["outcome"] == "duplicate"
        assert deliver("evt_2", "payment_intent.succeeded", paid).json()["outcome"] == "already_paid"
    assert [(m.to, m.subject, m.body) for m in mail.outbox] == [
        (
            [user.email],
            "Booking confirmed: Wine tasting",
            f"Your booking for Wine tasting on {event.starts_at:%Y-%m-%d %H:%M} UTC is confirmed (1 seat(s)), paid "
            "25.50 EUR. We look forward to seeing you.",
        )
    ]


def test_no_confirmation_for_a_booking_that_no_longer_stands_and_one_per_booking(django_capture_on_commit_callbacks):
    user, membership = member()
    event = EventFactory(capacity=1)
    booking = booking_create(membership=membership, event_id=event.pk)  # its email is never sent (no commit)
    Booking.objects.filter(pk=booking.pk).update(status=Booking.Status.CANCELLED)
    assert booking_notify(booking.pk, "confirmed") is False
    # A waitlist promotion's "You're in" is the booking's confirmation: no second one.
    holder_user, holder = member()
    other = EventFactory(capacity=1)
    seat = booking_create(membership=holder, event_id=other.pk)
    waiting = booking_create(membership=membership, event_id=other.pk, join_waitlist=True)
    with django_capture_on_commit_callbacks(execute=True):
        api_as(holder_user).post(f"bookings/{seat.pk}/cancel")
    assert [(m.to, m.subject) for m in mail.outbox] == [([user.email], f"You're in: {other.title}")]
    waiting.refresh_from_db()
    assert (waiting.status, waiting.confirmation_emailed_at is not None) == ("confirmed", True)
    assert booking_notify(waiting.pk, "confirmed") is False
    assert len(mail.outbox) == 1
