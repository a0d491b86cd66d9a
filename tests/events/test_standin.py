"""The local payment stand-in: without STRIPE_SECRET_KEY (outside production) a paid event works end to end
in a demo; in production, or with Stripe configured, the stand-in is refused."""

from decimal import Decimal

import pytest

from events import gateway
from events.models import Booking, StripeEvent
from tests.conftest import api_as
from tests.events.factories import EventFactory, member

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_stripe_credentials(settings, fake_stripe):
    settings.STRIPE_SECRET_KEY = ""
    gateway.set_http_client(None)  # no test transport: what a demo server has
    yield
    gateway.set_http_client(fake_stripe)


def test_a_paid_booking_is_paid_end_to_end_through_the_standin(no_stripe_credentials):
    user, _ = member()
    event = EventFactory(price=Decimal("45.00"), capacity=5)
    api = api_as(user)

    booked = api.post(f"events/{event.pk}/bookings", {})
    assert booked.status_code == 201, booked.content
    booking_id = booked.json()["id"]
    assert booked.json()["status"] == "held"
    assert booked.json()["payment"] == {
        "payment_intent_id": f"pi_standin_{booking_id}",
        "client_secret": f"pi_standin_{booking_id}_secret_standin",
        "status": "requires_payment_method",
    }

    paid = api.post(f"bookings/{booking_id}/standin-payment")
    assert paid.status_code == 200, paid.content
    assert (paid.json()["status"], paid.json()["payment_status"]) == ("confirmed", "paid")
    booking = Booking.objects.get(pk=booking_id)
    assert (booking.status, booking.payment_status, booking.payment_intent_id) == (
        "confirmed",
        "paid",
        f"pi_standin_{booking_id}",
    )
    record = StripeEvent.objects.get()
    assert (record.event_id, record.type, record.outcome, record.booking_id) == (
        f"evt_standin_{booking_id}_succeeded",
        "payment_intent.succeeded",
        "confirmed",
        booking_id,
    )
    again = api.post(f"bookings/{booking_id}/standin-payment")
    assert again.status_code == 409
    assert again.json()["code"] == "booking_not_payable"


def test_the_standin_is_refused_in_production(no_stripe_credentials, settings):
    user, _ = member()
    event = EventFactory(price=Decimal("45.00"), capacity=5)
    api = api_as(user)
    settings.PRODUCTION = True

    booked = api.post(f"events/{event.pk}/bookings", {})
    assert booked.status_code == 503
    assert booked.json()["code"] == "payment_provider_not_configured"
    booking = Booking.objects.get()
    assert (booking.status, booking.payment_intent_id) == ("held", None)

    refused = api.post(f"bookings/{booking.pk}/standin-payment")
    assert refused.status_code == 404
    assert refused.json() == {
        "detail": "The local payment stand-in is off: payments go through Stripe.",
        "code": "payment_standin_disabled",
        "fields": {},
    }
    booking.refresh_from_db()
    assert (booking.status, booking.payment_status) == ("held", "pending")
    assert StripeEvent.objects.count() == 0


def test_the_standin_is_refused_when_stripe_is_configured(fake_stripe):
    user, _ = member()
    event = EventFactory(price=Decimal("45.00"), capacity=5)
    api = api_as(user)
    booking_id = api.post(f"events/{event.pk}/bookings", {}).json()["id"]
    refused = api.post(f"bookings/{booking_id}/standin-payment")
    assert refused.status_code == 404
    assert refused.json()["code"] == "payment_standin_disabled"
    assert Booking.objects.get().status == "held"
