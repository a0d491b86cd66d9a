"""Stripe that accepts connections and never answers (a local TCP server stands in for it): a paid booking is
answered within the time budget with 503 + Retry-After, the hold stays payable, and a replay with the same
Idempotency-Key does not call Stripe again. Nothing of the provider's error text reaches the member."""

import socket
import threading
import time
from decimal import Decimal

import pytest

from events import gateway
from events.models import Booking
from tests.conftest import api_as
from tests.events.factories import EventFactory, member

pytestmark = pytest.mark.django_db

BUDGET = 1.0  # the test's Stripe timeouts (production default: 3 s connect, 10 s read)


class BlackHole:
    """A TCP server that accepts every connection, reads nothing and never answers."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.port = self.server.getsockname()[1]
        self.accepted = 0
        self.connections: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            self.accepted += 1
            self.connections.append(connection)

    def close(self):
        self.server.close()
        for connection in self.connections:
            connection.close()


@pytest.fixture
def hanging_stripe(settings, fake_stripe):
    hole = BlackHole()
    settings.STRIPE_API_BASE = f"http://127.0.0.1:{hole.port}"
    settings.STRIPE_CONNECT_TIMEOUT_SECONDS = BUDGET
    settings.STRIPE_REQUEST_TIMEOUT_SECONDS = BUDGET
    gateway.set_http_client(None)  # the SDK's real HTTP client, against the black hole
    yield hole
    gateway.set_http_client(fake_stripe)
    hole.close()


def test_paid_booking_answers_503_within_the_budget_and_the_replay_never_calls_stripe(hanging_stripe, fake_stripe):
    user, _ = member()
    event = EventFactory(price=Decimal("25.00"))
    api = api_as(user)
    headers = {"Idempotency-Key": "pay-1"}

    started = time.monotonic()
    response = api.post(f"events/{event.pk}/bookings", {}, headers=headers)
    elapsed = time.monotonic() - started

    assert BUDGET <= elapsed < BUDGET + 1.5  # one attempt, no SDK retries
    assert hanging_stripe.accepted == 1
    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    booking = Booking.objects.get()
    hold_expires = booking.hold_expires_at.isoformat().replace("+00:00", "Z")
    assert response.json() == {
        "detail": f"Your booking {booking.pk} is held until {hold_expires}, but the payment provider did not "
        f"answer in time. Pay it with POST /api/v1/bookings/{booking.pk}/payment (retry shortly); a retry of "
        "this request with the same Idempotency-Key answers the booking without payment details.",
        "code": "payment_provider_unavailable",
        "fields": {"booking_id": [str(booking.pk)], "hold_expires_at": [hold_expires]},
    }
    assert str(hanging_stripe.port) not in response.content.decode()
    assert (booking.status, booking.payment_status, booking.payment_intent_id) == ("held", "pending", None)

    # The replay answers at once from the record: the held booking, no payment, no connection to Stripe.
    started = time.monotonic()
    replay = api.post(f"events/{event.pk}/bookings", {}, headers=headers)
    assert time.monotonic() - started < 0.5
    assert hanging_stripe.accepted == 1
    assert replay.status_code == 201
    assert (replay.json()["id"], replay.json()["status"], replay.json()["payment"]) == (booking.pk, "held", None)

    # Paying while Stripe still hangs: the same bounded 503.
    started = time.monotonic()
    unpaid = api.post(f"bookings/{booking.pk}/payment")
    assert time.monotonic() - started < BUDGET + 1.5
    assert hanging_stripe.accepted == 2
    assert (unpaid.status_code, unpaid["Retry-After"], unpaid.json()["code"]) == (
        503,
        "30",
        "payment_provider_unavailable",
    )
    assert str(hanging_stripe.port) not in unpaid.content.decode()

    # Stripe is back: the hold is still payable.
    gateway.set_http_client(fake_stripe)
    paid = api.post(f"bookings/{booking.pk}/payment")
    assert paid.status_code == 200
    booking.refresh_from_db()
    assert paid.json() == {
        "payment_intent_id": booking.payment_intent_id,
        "client_secret": f"{booking.payment_intent_id}_secret_fake",
        "status": "requires_payment_method",
    }
    assert booking.status == Booking.Status.HELD


def test_a_connection_refused_is_a_503_without_the_providers_text(settings, fake_stripe):
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    settings.STRIPE_API_BASE = f"http://127.0.0.1:{port}"
    gateway.set_http_client(None)
    try:
        user, _ = member()
        event = EventFactory(price=Decimal("25.00"))
        response = api_as(user).post(f"events/{event.pk}/bookings", {})
    finally:
        gateway.set_http_client(fake_stripe)
    assert response.status_code == 503
    assert response.json()["code"] == "payment_provider_unavailable"
    assert "provider_error" not in response.json()["fields"]
    assert str(port) not in response.content.decode()
    assert "127.0.0.1" not in response.content.decode()
    assert Booking.objects.get().status == Booking.Status.HELD
