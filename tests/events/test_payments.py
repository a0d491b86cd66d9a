from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client

from events.models import Booking, Event, StripeEvent
from events.services.bookings import booking_create
from events.services.waitlist import holds_expire
from tests.conftest import api_as
from tests.events.conftest import sign
from tests.events.factories import NOW, EventFactory, member
from tests.events.stripe_fake import charge_object, intent_object, webhook_body

pytestmark = pytest.mark.django_db


def deliver(event_id: str, event_type: str, data_object: dict, signature: str | None = None):
    body = webhook_body(event_id, event_type, data_object)
    return Client().post(
        "/api/v1/stripe/webhook",
        data=body,
        content_type="application/json",
        headers={"Stripe-Signature": signature if signature is not None else sign(body)},
    )


def book_paid(fake_stripe, *, price="40.00", capacity=5, guests=0):
    user, membership = member(guests=1)
    event = EventFactory(price=Decimal(price), capacity=capacity)
    response = api_as(user).post(f"events/{event.pk}/bookings", {"guests": guests})
    assert response.status_code == 201, response.content
    body = response.json()
    return user, membership, event, Booking.objects.get(pk=body["id"]), body


def test_paid_booking_is_held_with_a_payment_intent(fake_stripe):
    _, _, event, booking, body = book_paid(fake_stripe, guests=1)
    assert body["status"] == "held"
    assert body["payment"]["payment_intent_id"] == booking.payment_intent_id
    assert body["payment"]["client_secret"] == f"{booking.payment_intent_id}_secret_fake"
    (call,) = fake_stripe.calls_to("POST", "/v1/payment_intents")
    assert call[2]["amount"] == "8000"
    assert call[2]["currency"] == "eur"
    assert call[2]["metadata[booking_id]"] == str(booking.pk)
    assert call[3] == f"premier-booking-{booking.pk}-payment-intent"
    event.refresh_from_db()
    assert event.seats_booked == 2


def test_idempotent_retry_of_paid_booking_replays_the_booking_without_calling_stripe(fake_stripe):
    user, _ = member()
    event = EventFactory(price=Decimal("10.00"))
    api = api_as(user)
    first = api.post(f"events/{event.pk}/bookings", {}, headers={"Idempotency-Key": "k1"})
    calls_after_first = len(fake_stripe.calls)
    retry = api.post(f"events/{event.pk}/bookings", {}, headers={"Idempotency-Key": "k1"})
    assert first.status_code == retry.status_code == 201
    assert first.json()["payment"]["client_secret"].endswith("_secret_fake")
    # The replay is the stored booking: no client secret (never stored), no call to Stripe.
    assert retry.json() == {**first.json(), "payment": None}
    assert len(fake_stripe.calls) == calls_after_first == 1
    assert Booking.objects.count() == 1
    booking = Booking.objects.get()
    deliver(
        "evt_paid",
        "payment_intent.succeeded",
        intent_object(booking.payment_intent_id, status="succeeded", amount=1000),
    )
    after_payment = api.post(f"events/{event.pk}/bookings", {}, headers={"Idempotency-Key": "k1"})
    assert after_payment.status_code == 201
    assert after_payment.json()["payment"] is None


def test_stripe_down_still_holds_the_seat_and_payment_can_be_started_later(fake_stripe):
    user, _ = member()
    event = EventFactory(price=Decimal("10.00"))
    api = api_as(user)
    fake_stripe.down = True
    booked = api.post(f"events/{event.pk}/bookings", {})
    assert booked.status_code == 503
    assert booked["Retry-After"] == "30"
    booking = Booking.objects.get()
    assert booking.status == Booking.Status.HELD
    assert booked.json()["code"] == "payment_provider_unavailable"
    assert booked.json()["fields"] == {
        "booking_id": [str(booking.pk)],
        "hold_expires_at": [booking.hold_expires_at.isoformat().replace("+00:00", "Z")],
    }
    body = {"id": booking.pk}
    unavailable = api.post(f"bookings/{body['id']}/payment")
    assert unavailable.status_code == 503
    assert unavailable["Retry-After"] == "30"
    assert unavailable.json() == {
        "detail": "The payment provider did not answer in time. Retry shortly.",
        "code": "payment_provider_unavailable",
        "fields": {},
    }
    fake_stripe.down = False
    paid = api.post(f"bookings/{body['id']}/payment")
    assert paid.status_code == 200
    assert paid.json()["payment_intent_id"] == Booking.objects.get(pk=body["id"]).payment_intent_id


def test_succeeded_webhook_delivered_ten_times_confirms_once(fake_stripe):
    _, _, event, booking, _ = book_paid(fake_stripe)
    obj = intent_object(booking.payment_intent_id, status="succeeded", amount=4000)
    outcomes = [deliver("evt_1", "payment_intent.succeeded", obj).json()["outcome"] for _ in range(10)]
    assert outcomes == ["confirmed"] + ["duplicate"] * 9
    booking.refresh_from_db()
    assert booking.status == Booking.Status.CONFIRMED
    assert booking.payment_status == Booking.PaymentStatus.PAID
    assert StripeEvent.objects.count() == 1
    event.refresh_from_db()
    assert event.seats_booked == 1


def test_bad_signature_is_400_and_changes_nothing(fake_stripe):
    _, _, event, booking, _ = book_paid(fake_stripe)
    obj = intent_object(booking.payment_intent_id, status="succeeded", amount=4000)
    body = webhook_body("evt_bad", "payment_intent.succeeded", obj)
    forged = deliver("evt_bad", "payment_intent.succeeded", obj, signature=sign(body, "whsec_wrong"))
    missing = deliver("evt_bad", "payment_intent.succeeded", obj, signature="")
    assert forged.status_code == missing.status_code == 400
    assert forged.json()["code"] == "invalid_signature"
    booking.refresh_from_db()
    assert booking.status == Booking.Status.HELD
    assert booking.payment_status == Booking.PaymentStatus.PENDING
    assert StripeEvent.objects.count() == 0


def test_failed_after_succeeded_out_of_order_stays_confirmed(fake_stripe):
    _, _, _, booking, _ = book_paid(fake_stripe)
    pi = booking.payment_intent_id
    assert (
        deliver("evt_s", "payment_intent.succeeded", intent_object(pi, status="succeeded", amount=4000)).json()[
            "outcome"
        ]
        == "confirmed"
    )
    late_failure = deliver(
        "evt_f", "payment_intent.payment_failed", intent_object(pi, status="requires_payment_method", amount=4000)
    )
    assert late_failure.json()["outcome"] == "stale"
    booking.refresh_from_db()
    assert (booking.status, booking.payment_status) == (Booking.Status.CONFIRMED, Booking.PaymentStatus.PAID)


def test_failed_then_succeeded_confirms(fake_stripe):
    _, _, _, booking, _ = book_paid(fake_stripe)
    pi = booking.payment_intent_id
    deliver("evt_f", "payment_intent.payment_failed", intent_object(pi, status="requires_payment_method", amount=4000))
    booking.refresh_from_db()
    assert (booking.status, booking.payment_status) == (Booking.Status.HELD, Booking.PaymentStatus.FAILED)
    deliver("evt_s", "payment_intent.succeeded", intent_object(pi, status="succeeded", amount=4000))
    booking.refresh_from_db()
    assert (booking.status, booking.payment_status) == (Booking.Status.CONFIRMED, Booking.PaymentStatus.PAID)


def test_refund_delivered_before_success_ends_refunded_and_cancelled(fake_stripe):
    _, _, event, booking, _ = book_paid(fake_stripe)
    pi = booking.payment_intent_id
    assert (
        deliver("evt_r", "charge.refunded", charge_object(pi, amount=4000, amount_refunded=4000)).json()["outcome"]
        == "refunded_cancelled"
    )
    assert (
        deliver("evt_s", "payment_intent.succeeded", intent_object(pi, status="succeeded", amount=4000)).json()[
            "outcome"
        ]
        == "already_refunded"
    )
    booking.refresh_from_db()
    assert (booking.status, booking.payment_status) == (Booking.Status.CANCELLED, Booking.PaymentStatus.REFUNDED)
    assert booking.refunded_amount == Decimal("40.00")
    event.refresh_from_db()
    assert event.seats_booked == 0
    assert fake_stripe.calls_to("POST", "/v1/refunds") == []


def test_canceled_intent_releases_the_hold(fake_stripe):
    _, _, event, booking, _ = book_paid(fake_stripe)
    pi = booking.payment_intent_id
    deliver("evt_c", "payment_intent.canceled", intent_object(pi, status="canceled", amount=4000))
    booking.refresh_from_db()
    assert booking.status == Booking.Status.CANCELLED
    event.refresh_from_db()
    assert event.seats_booked == 0


def test_hold_expiry_frees_seats_cancels_intent_and_promotes_waitlist(fake_stripe, django_capture_on_commit_callbacks):
    event = EventFactory(price=Decimal("30.00"), capacity=1)
    _, holder = member()
    booking = booking_create(membership=holder, event_id=event.pk, now=NOW)
    from events.services.payments import booking_payment_start

    booking_payment_start(membership=holder, booking_id=booking.pk)
    _, waiting = member()
    waitlisted = booking_create(membership=waiting, event_id=event.pk, join_waitlist=True, now=NOW)
    assert holds_expire(now=NOW + timedelta(minutes=14)) == 0
    with django_capture_on_commit_callbacks(execute=True):
        assert holds_expire(now=NOW + timedelta(minutes=15)) == 1
    booking.refresh_from_db()
    waitlisted.refresh_from_db()
    assert booking.status == Booking.Status.EXPIRED
    assert waitlisted.status == Booking.Status.HELD
    assert waitlisted.hold_expires_at == NOW + timedelta(minutes=15) + timedelta(hours=12)
    assert len(fake_stripe.calls_to("POST", f"/v1/payment_intents/{booking.payment_intent_id}/cancel")) == 1
    event.refresh_from_db()
    assert event.seats_booked == 1
    assert holds_expire(now=NOW + timedelta(minutes=16)) == 0


def _expired_paid_booking(fake_stripe, capacity=1):
    event = EventFactory(price=Decimal("30.00"), capacity=capacity)
    _, holder = member()
    booking = booking_create(membership=holder, event_id=event.pk, now=NOW)
    from events.services.payments import booking_payment_start

    booking_payment_start(membership=holder, booking_id=booking.pk)
    holds_expire(now=NOW + timedelta(minutes=20))
    booking.refresh_from_db()
    assert booking.status == Booking.Status.EXPIRED
    return event, booking


def test_late_payment_with_seats_left_is_confirmed(fake_stripe):
    event, booking = _expired_paid_booking(fake_stripe)
    obj = intent_object(booking.payment_intent_id, status="succeeded", amount=3000)
    assert deliver("evt_late", "payment_intent.succeeded", obj).json()["outcome"] == "late_confirmed"
    booking.refresh_from_db()
    assert (booking.status, booking.payment_status) == (Booking.Status.CONFIRMED, Booking.PaymentStatus.PAID)
    event.refresh_from_db()
    assert event.seats_booked == 1
    assert fake_stripe.calls_to("POST", "/v1/refunds") == []


def test_late_payment_without_seats_is_refunded(fake_stripe, django_capture_on_commit_callbacks):
    event, booking = _expired_paid_booking(fake_stripe)
    _, other = member()
    booking_create(membership=other, event_id=event.pk, now=NOW + timedelta(minutes=21))
    obj = intent_object(booking.payment_intent_id, status="succeeded", amount=3000)
    with django_capture_on_commit_callbacks(execute=True):
        assert deliver("evt_late", "payment_intent.succeeded", obj).json()["outcome"] == "refunded_no_seat"
    booking.refresh_from_db()
    assert booking.status == Booking.Status.EXPIRED
    assert booking.payment_status == Booking.PaymentStatus.REFUNDED
    assert booking.refund_amount == Decimal("30.00")
    (refund_call,) = fake_stripe.calls_to("POST", "/v1/refunds")
    assert refund_call[2]["amount"] == "3000"
    assert refund_call[2]["payment_intent"] == booking.payment_intent_id
    assert refund_call[3] == f"premier-booking-{booking.pk}-refund"
    event.refresh_from_db()
    assert event.seats_booked == 1
    # Stripe then reports the refund; nothing changes twice.
    deliver(
        "evt_refund", "charge.refunded", charge_object(booking.payment_intent_id, amount=3000, amount_refunded=3000)
    )
    booking.refresh_from_db()
    assert booking.refunded_amount == Decimal("30.00")
    assert len(fake_stripe.calls_to("POST", "/v1/refunds")) == 1


def _confirmed_paid(fake_stripe, *, starts_in: timedelta, full_refund_hours=48, late_percent=50):
    from django.utils import timezone

    user, membership = member()
    event = EventFactory(
        price=Decimal("20.00"),
        starts_at=timezone.now() + starts_in,
        full_refund_hours=full_refund_hours,
        late_refund_percent=late_percent,
    )
    body = api_as(user).post(f"events/{event.pk}/bookings", {}).json()
    booking = Booking.objects.get(pk=body["id"])
    deliver(
        f"evt_{booking.pk}",
        "payment_intent.succeeded",
        intent_object(booking.payment_intent_id, status="succeeded", amount=2000),
    )
    booking.refresh_from_db()
    assert booking.status == Booking.Status.CONFIRMED
    return user, event, booking


@pytest.mark.parametrize(
    "starts_in,expected_refund",
    [(timedelta(days=5), Decimal("20.00")), (timedelta(hours=10), Decimal("10.00"))],
)
def test_member_cancel_refunds_by_event_rule(
    fake_stripe, django_capture_on_commit_callbacks, starts_in, expected_refund
):
    user, event, booking = _confirmed_paid(fake_stripe, starts_in=starts_in)
    with django_capture_on_commit_callbacks(execute=True):
        response = api_as(user).post(f"bookings/{booking.pk}/cancel")
    assert response.status_code == 200
    booking.refresh_from_db()
    assert booking.status == Booking.Status.CANCELLED
    assert booking.refund_amount == expected_refund
    (refund_call,) = fake_stripe.calls_to("POST", "/v1/refunds")
    assert refund_call[2]["amount"] == str(int(expected_refund * 100))
    event.refresh_from_db()
    assert event.seats_booked == 0


def test_unknown_event_types_and_intents_are_acknowledged(fake_stripe):
    assert deliver("evt_x", "customer.created", {"id": "cus_1", "object": "customer"}).json()["outcome"] == "ignored"
    unknown = deliver("evt_y", "payment_intent.succeeded", intent_object("pi_nobody", status="succeeded", amount=1))
    assert unknown.status_code == 200
    assert unknown.json()["outcome"] == "unknown_payment_intent"


def test_signed_garbage_is_400(fake_stripe):
    body = "not json"
    response = Client().post(
        "/api/v1/stripe/webhook", data=body, content_type="application/json", headers={"Stripe-Signature": sign(body)}
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_event"
    assert StripeEvent.objects.count() == 0
    assert Event.objects.count() == 0


def test_canceled_after_succeeded_is_stale_and_keeps_the_booking(fake_stripe):
    _, _, event, booking, _ = book_paid(fake_stripe)
    pi = booking.payment_intent_id
    deliver("evt_s", "payment_intent.succeeded", intent_object(pi, status="succeeded", amount=4000))
    stale = deliver("evt_c", "payment_intent.canceled", intent_object(pi, status="canceled", amount=4000))
    assert stale.json()["outcome"] == "stale"
    booking.refresh_from_db()
    assert (booking.status, booking.payment_status) == (Booking.Status.CONFIRMED, Booking.PaymentStatus.PAID)
    event.refresh_from_db()
    assert event.seats_booked == 1
