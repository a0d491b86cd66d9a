"""Completing ended events: no-shows, leftover holds and waitlists, final attendance for partners, check-in
window. Time is controlled by passing `now=` (the events are in 2030, the API's clock is before them)."""

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.core import mail
from django.db import connection
from django.utils import timezone

from core.errors import Conflict
from events.models import Booking, Event
from events.schedule import BEAT
from events.services.bookings import booking_create
from events.services.completion import events_complete
from events.services.partners import booking_check_in
from events.services.payments import booking_payment_start, stripe_event_apply
from events.tasks import complete_ended_events
from loyalty.models import Interaction
from tests.conftest import api_as
from tests.events.factories import EventFactory, PartnerFactory, member, partner_staff
from tests.events.stripe_fake import intent_object

pytestmark = pytest.mark.django_db

GRACE = timedelta(hours=2)
NOTHING = {"events": 0, "no_show": 0, "holds_expired": 0, "waitlist_cancelled": 0, "refunds": 0}


def snapshot():
    events = list(Event.objects.order_by("id").values())
    bookings = list(Booking.objects.order_by("id").values())
    return events, bookings


def free_event_with_bookings(staff):
    """A 3-seat free event: one booking checked in, one (with a guest) never shows, one on the waitlist."""
    event = EventFactory(partner=staff.partner_staff.partner, capacity=3)
    attended = booking_create(membership=member()[1], event_id=event.pk)
    absent = booking_create(membership=member(guests=1)[1], event_id=event.pk, guests=1)
    waiting = booking_create(membership=member()[1], event_id=event.pk, join_waitlist=True)
    booking_check_in(partner=event.partner, booking_id=attended.pk, by=staff, now=event.ends_at + timedelta(hours=1))
    return event, attended, absent, waiting


def test_grace_period_setting_defaults_to_two_hours():
    assert settings.EVENT_COMPLETION_GRACE_HOURS == 2


def test_completion_marks_no_shows_cancels_waitlist_and_leaves_attended_alone(django_capture_on_commit_callbacks):
    staff = partner_staff()
    event, attended, absent, waiting = free_event_with_bookings(staff)
    attended_before = Booking.objects.values().get(pk=attended.pk)
    draft = EventFactory(partner=event.partner, status=Event.Status.DRAFT, ends_at=event.ends_at)
    cancelled = EventFactory(partner=event.partner, status=Event.Status.CANCELLED, ends_at=event.ends_at)
    later = EventFactory(partner=event.partner, starts_at=event.starts_at + timedelta(days=1))
    done_at = event.ends_at + GRACE

    # Still within the grace: nothing happens.
    assert events_complete(now=done_at - timedelta(seconds=1)) == NOTHING
    assert Event.objects.get(pk=event.pk).status == Event.Status.PUBLISHED

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        totals = events_complete(now=done_at)
    assert totals == {"events": 1, "no_show": 1, "holds_expired": 0, "waitlist_cancelled": 1, "refunds": 0}
    assert len(callbacks) == 1  # the waitlisted member's email
    event.refresh_from_db()
    assert (event.status, event.completed_at, event.updated_at) == (Event.Status.COMPLETED, done_at, done_at)
    assert event.seats_booked == 3  # attended (1) + no-show (2): seats that were taken stay counted
    statuses = dict(Booking.objects.values_list("pk", "status"))
    assert statuses == {attended.pk: "attended", absent.pk: "no_show", waiting.pk: "cancelled"}
    assert Booking.objects.values().get(pk=attended.pk) == attended_before
    waiting.refresh_from_db()
    assert (waiting.cancelled_at, waiting.cancel_reason) == (done_at, "event_completed")
    absent.refresh_from_db()
    assert (absent.cancelled_at, absent.cancel_reason, absent.checked_in_at) == (None, "", None)
    # Only the attended booking is an engagement interaction.
    assert list(Interaction.objects.values_list("external_id", flat=True)) == [f"event-booking-{attended.pk}"]
    # Draft, cancelled and not yet ended events are untouched.
    assert dict(Event.objects.filter(pk__in=[draft.pk, cancelled.pk, later.pk]).values_list("pk", "status")) == {
        draft.pk: "draft",
        cancelled.pk: "cancelled",
        later.pk: "published",
    }


def test_running_twice_changes_nothing(django_capture_on_commit_callbacks):
    staff = partner_staff()
    event, *_ = free_event_with_bookings(staff)
    done_at = event.ends_at + GRACE
    with django_capture_on_commit_callbacks(execute=True):
        events_complete(now=done_at)
    before, sent = snapshot(), len(mail.outbox)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert events_complete(now=done_at + timedelta(days=3)) == NOTHING
    assert callbacks == []
    assert snapshot() == before
    assert len(mail.outbox) == sent == 1


def test_waitlisted_members_are_told_the_event_took_place_and_their_place_is_closed(
    django_capture_on_commit_callbacks,
):
    staff = partner_staff()
    event, attended, absent, waiting = free_event_with_bookings(staff)
    also_waiting = booking_create(membership=member()[1], event_id=event.pk, join_waitlist=True)
    # A paid event on the same sweep: its unpaid hold expires silently, its waitlisted member is told.
    paid = EventFactory(partner=event.partner, price=Decimal("30.00"), capacity=1, ends_at=event.ends_at)
    held = booking_create(membership=member()[1], event_id=paid.pk)
    paid_waiting = booking_create(membership=member()[1], event_id=paid.pk, join_waitlist=True)
    # A waitlisted booking the member cancelled earlier is not told again.
    left = booking_create(membership=member()[1], event_id=paid.pk, join_waitlist=True)
    Booking.objects.filter(pk=left.pk).update(status=Booking.Status.CANCELLED, cancel_reason="member")
    assert Booking.objects.get(pk=held.pk).status == Booking.Status.HELD
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        totals = events_complete(now=event.ends_at + GRACE)
    assert totals == {"events": 2, "no_show": 1, "holds_expired": 1, "waitlist_cancelled": 3, "refunds": 0}

    def email_of(booking):
        return Booking.objects.get(pk=booking.pk).membership.customer.user.email  # the verified login

    sent = sorted((m.to, m.subject) for m in mail.outbox)
    assert sent == sorted(
        [
            ([email_of(waiting)], f"Waitlist closed: {event.title}"),
            ([email_of(also_waiting)], f"Waitlist closed: {event.title}"),
            ([email_of(paid_waiting)], f"Waitlist closed: {paid.title}"),
        ]
    )
    not_told = {email_of(b) for b in (attended, absent, held, left)}
    assert not_told.isdisjoint(address for m in mail.outbox for address in m.to)
    (message,) = [m for m in mail.outbox if m.to == [email_of(paid_waiting)]]
    assert message.body == (
        f"{paid.title} on {paid.starts_at:%Y-%m-%d %H:%M} UTC has now taken place. No seat became free for you, "
        "so your place on the waitlist is closed. We hope to see you at another event."
    )
    assert message.from_email == settings.DEFAULT_FROM_EMAIL

    # A second run of the completion task sends nothing more.
    with django_capture_on_commit_callbacks(execute=True):
        assert events_complete(now=event.ends_at + GRACE + timedelta(hours=1)) == NOTHING
    assert len(mail.outbox) == 3


def test_leftover_hold_expires_and_paid_unconfirmed_booking_is_refunded_in_full(
    fake_stripe, django_capture_on_commit_callbacks
):
    event = EventFactory(price=Decimal("25.00"), capacity=5)
    _, holder = member()
    held = booking_create(membership=holder, event_id=event.pk)
    intent_id = booking_payment_start(membership=holder, booking_id=held.pk).id
    _, payer = member()
    confirmed = booking_create(membership=payer, event_id=event.pk)
    paid_intent = booking_payment_start(membership=payer, booking_id=confirmed.pk).id
    stripe_event_apply(
        event_id="evt_paid_confirmed",
        event_type="payment_intent.succeeded",
        data_object=intent_object(paid_intent, status="succeeded", amount=2500),
    )
    # An edge case no ordinary path produces: a held booking marked paid. It never got its seat confirmed.
    _, odd = member()
    odd_held = booking_create(membership=odd, event_id=event.pk)
    Booking.objects.filter(pk=odd_held.pk).update(payment_status=Booking.PaymentStatus.PAID, payment_intent_id="pi_x")
    fake_stripe.intents["pi_x"] = {**intent_object("pi_x", status="succeeded", amount=2500), "client_secret": "s"}

    with django_capture_on_commit_callbacks(execute=True):
        totals = events_complete(now=event.ends_at + GRACE)
    assert totals == {"events": 1, "no_show": 1, "holds_expired": 2, "waitlist_cancelled": 0, "refunds": 1}
    event.refresh_from_db()
    assert (event.status, event.seats_booked) == (Event.Status.COMPLETED, 1)
    held.refresh_from_db()
    assert (held.status, held.cancel_reason, held.payment_status) == ("expired", "event_completed", "pending")
    assert [call[1] for call in fake_stripe.calls if call[1].endswith("/cancel")] == [
        f"/v1/payment_intents/{intent_id}/cancel"
    ]
    confirmed.refresh_from_db()
    assert (confirmed.status, confirmed.payment_status, confirmed.refund_amount) == ("no_show", "paid", 0)
    odd_held.refresh_from_db()
    assert (odd_held.status, odd_held.payment_status, odd_held.refunded_amount) == (
        "expired",
        "refunded",
        Decimal("25.00"),
    )
    (refund,) = fake_stripe.calls_to("POST", "/v1/refunds")
    assert (refund[2]["payment_intent"], refund[2]["amount"], refund[3]) == (
        "pi_x",
        "2500",
        f"premier-booking-{odd_held.pk}-refund",
    )
    # A payment for the expired hold that arrives after completion is refunded (the existing late-payment rule).
    with django_capture_on_commit_callbacks(execute=True):
        outcome = stripe_event_apply(
            event_id="evt_late",
            event_type="payment_intent.succeeded",
            data_object=intent_object(intent_id, status="succeeded", amount=2500),
        )
    assert outcome == "refunded_no_seat"
    held.refresh_from_db()
    assert (held.status, held.payment_status) == ("expired", "refunded")
    event.refresh_from_db()
    assert event.seats_booked == 1


def test_check_in_during_grace_then_refused_after_the_window_and_after_completion():
    staff = partner_staff()
    event = EventFactory(partner=staff.partner_staff.partner)
    first = booking_create(membership=member()[1], event_id=event.pk)
    late = booking_create(membership=member()[1], event_id=event.pk)
    booking_check_in(partner=event.partner, booking_id=first.pk, by=staff, now=event.ends_at + GRACE / 2)
    with pytest.raises(Conflict) as closed:
        booking_check_in(partner=event.partner, booking_id=late.pk, by=staff, now=event.ends_at + GRACE)
    assert closed.value.code == "check_in_closed"
    assert Booking.objects.get(pk=late.pk).status == Booking.Status.CONFIRMED

    events_complete(now=event.ends_at + GRACE)
    api = api_as(staff)
    response = api.post(f"partner/bookings/{late.pk}/check-in")
    assert response.status_code == 409
    assert response.json()["code"] == "event_completed"
    late.refresh_from_db()
    assert (late.status, late.checked_in_at) == ("no_show", None)
    assert Interaction.objects.filter(external_id=f"event-booking-{late.pk}").count() == 0
    # Replaying a check-in that happened during the grace still answers the same attended booking.
    replay = api.post(f"partner/bookings/{first.pk}/check-in")
    assert replay.status_code == 200
    assert replay.json()["status"] == "attended"
    # A completed event can no longer be cancelled or edited.
    assert api.post(f"partner/events/{event.pk}/cancel").json()["code"] == "event_not_cancellable"
    assert api.patch(f"partner/events/{event.pk}", {"title": "Again"}).json()["code"] == "event_not_editable"


def test_partner_sees_final_attendance_of_own_completed_events_with_constant_queries(django_assert_num_queries):
    staff = partner_staff()
    event, *_ = free_event_with_bookings(staff)
    second, *_ = free_event_with_bookings(staff)
    other_partner_event = EventFactory(partner=PartnerFactory(), ends_at=event.ends_at)
    events_complete(now=max(event.ends_at, second.ends_at) + GRACE)
    assert Event.objects.get(pk=other_partner_event.pk).status == Event.Status.COMPLETED
    api = api_as(staff)
    # Same query count as any other partner event list: session, user, roles, link, page (no COUNT: it ends the list).
    with django_assert_num_queries(5):
        body = api.get("partner/events?status=completed").json()
    assert body["count"] == 2
    assert [item["id"] for item in body["items"]] == [event.pk, second.pk]
    figures = {
        key: body["items"][0][key]
        for key in (
            "status",
            "confirmed_count",
            "held_count",
            "waitlisted_count",
            "attended_count",
            "no_show_count",
            "attended_seats",
            "no_show_seats",
            "seats_booked",
        )
    }
    assert figures == {
        "status": "completed",
        "confirmed_count": 0,
        "held_count": 0,
        "waitlisted_count": 0,
        "attended_count": 1,
        "no_show_count": 1,
        "attended_seats": 1,
        "no_show_seats": 2,
        "seats_booked": 3,
    }
    assert body["items"][0]["completed_at"] is not None
    detail = api.get(f"partner/events/{event.pk}").json()
    assert (detail["attended_count"], detail["no_show_count"]) == (1, 1)
    with django_assert_num_queries(6):
        bookings = api.get(f"partner/events/{event.pk}/bookings?status=no_show").json()
    assert bookings["count"] == 1
    assert api.get(f"partner/events/{other_partner_event.pk}").status_code == 404


def test_periodic_task_is_scheduled_and_completes_events_that_ended_before_now():
    assert BEAT["events-complete-ended-events"]["task"] == "events.tasks.complete_ended_events"
    assert settings.CELERY_BEAT_SCHEDULE["events-complete-ended-events"] == BEAT["events-complete-ended-events"]
    now = timezone.now()
    ended = EventFactory(
        starts_at=now - timedelta(hours=6), ends_at=now - timedelta(hours=3), booking_opens_at=now - timedelta(days=9)
    )
    in_grace = EventFactory(
        starts_at=now - timedelta(hours=4), ends_at=now - timedelta(hours=1), booking_opens_at=now - timedelta(days=9)
    )
    assert complete_ended_events.delay().get()["events"] == 1
    assert dict(Event.objects.values_list("pk", "status")) == {ended.pk: "completed", in_grace.pk: "published"}
    assert complete_ended_events.delay().get() == NOTHING


def test_batches_cover_every_ended_event():
    events = [EventFactory() for _ in range(5)]
    for event in events:
        booking_create(membership=member()[1], event_id=event.pk)
    totals = events_complete(now=max(e.ends_at for e in events) + GRACE, batch=2)
    assert (totals["events"], totals["no_show"]) == (5, 5)
    assert set(Event.objects.values_list("status", flat=True)) == {"completed"}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_sweeps_complete_each_event_once():
    events = [EventFactory() for _ in range(6)]
    for event in events:
        booking_create(membership=member()[1], event_id=event.pk)
    now = max(e.ends_at for e in events) + GRACE
    barrier = threading.Barrier(4)
    results: list[dict] = []

    def sweep():
        try:
            barrier.wait()
            results.append(events_complete(now=now, batch=2))
        finally:
            connection.close()

    threads = [threading.Thread(target=sweep) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r["events"] for r in results) == 6
    assert sum(r["no_show"] for r in results) == 6
    assert Booking.objects.filter(status=Booking.Status.NO_SHOW).count() == 6
