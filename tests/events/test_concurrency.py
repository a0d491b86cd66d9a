"""Capacity under real concurrency, on PostgreSQL (skipped on SQLite, where writes are serialized anyway)."""

import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.db import connection

from core.errors import Conflict
from events.models import Booking
from events.services.bookings import booking_create
from events.services.payments import stripe_event_apply
from tests.events.factories import EventFactory
from tests.factories import CustomerFactory, MembershipFactory, TierFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ATTEMPTS = 200
THREADS = 40  # 40 connections at once: the shared server allows 100.


def _run_concurrently(func, args_list):
    barrier = threading.Barrier(THREADS)
    results: list = []
    lock = threading.Lock()
    chunks = [args_list[i::THREADS] for i in range(THREADS)]

    def worker(chunk):
        try:
            barrier.wait()
            for args in chunk:
                try:
                    outcome = func(*args)
                except Conflict as exc:
                    outcome = exc.code
                with lock:
                    results.append(outcome)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        list(pool.map(worker, chunks))
    return results


def test_200_concurrent_attempts_for_the_last_10_seats_confirm_exactly_10():
    tier = TierFactory(rank=2, guests_per_booking=0)
    event = EventFactory(capacity=30)
    # 20 seats already taken by real bookings: 10 are left.
    early = [MembershipFactory(programme=tier.programme, tier=tier, customer=CustomerFactory()) for _ in range(20)]
    for membership in early:
        booking_create(membership=membership, event_id=event.pk)
    members = [
        MembershipFactory(programme=tier.programme, tier=tier, customer=CustomerFactory()) for _ in range(ATTEMPTS)
    ]

    def attempt(membership):
        return booking_create(membership=membership, event_id=event.pk).status

    results = _run_concurrently(attempt, [(m,) for m in members])
    assert len(results) == ATTEMPTS
    assert results.count(Booking.Status.CONFIRMED) == 10
    assert results.count("event_full") == ATTEMPTS - 10
    event.refresh_from_db()
    assert event.seats_booked == event.capacity == 30
    confirmed_seats = sum(
        Booking.objects.filter(event=event, status__in=Booking.SEAT_STATUSES).values_list("seats", flat=True)
    )
    assert confirmed_seats == 30


def test_same_member_double_submit_books_once():
    tier = TierFactory(rank=2, guests_per_booking=0)
    event = EventFactory(capacity=10)
    membership = MembershipFactory(programme=tier.programme, tier=tier)

    def attempt(_):
        return booking_create(membership=membership, event_id=event.pk).status

    results = _run_concurrently(attempt, [(i,) for i in range(THREADS)])
    assert results.count(Booking.Status.CONFIRMED) == 1
    assert results.count("already_booked") == THREADS - 1
    event.refresh_from_db()
    assert event.seats_booked == 1


def test_same_webhook_delivered_concurrently_applies_once():
    tier = TierFactory(rank=2, guests_per_booking=0)
    event = EventFactory(capacity=5, price=Decimal("10.00"))
    membership = MembershipFactory(programme=tier.programme, tier=tier)
    booking = booking_create(membership=membership, event_id=event.pk)
    Booking.objects.filter(pk=booking.pk).update(payment_intent_id="pi_concurrent")
    obj = {"id": "pi_concurrent", "object": "payment_intent", "status": "succeeded", "amount_received": 1000}

    def deliver(_):
        return stripe_event_apply(event_id="evt_concurrent", event_type="payment_intent.succeeded", data_object=obj)

    results = _run_concurrently(deliver, [(i,) for i in range(THREADS)])
    assert sorted(results) == sorted(["confirmed"] + ["duplicate"] * (THREADS - 1))
    booking.refresh_from_db()
    assert (booking.status, booking.payment_status) == (Booking.Status.CONFIRMED, Booking.PaymentStatus.PAID)
