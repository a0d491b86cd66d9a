from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.utils import timezone

from events.models import Booking, Event
from events.services.bookings import booking_create
from loyalty.models import Membership
from tests.conftest import api_as
from tests.events.factories import NOW, EventFactory, control_member, member
from tests.factories import TierFactory

pytestmark = pytest.mark.django_db


def seats_consistent(event: Event) -> None:
    event.refresh_from_db()
    held = sum(Booking.objects.filter(event=event, status__in=Booking.SEAT_STATUSES).values_list("seats", flat=True))
    assert event.seats_booked == held
    assert event.seats_booked <= event.capacity


def test_free_event_booking_confirms_and_counts_seats():
    user, membership = member(guests=2)
    event = EventFactory(capacity=5)
    response = api_as(user).post(f"events/{event.pk}/bookings", {"guests": 2})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "confirmed"
    assert body["seats"] == 3
    assert body["payment"] is None
    assert body["payment_status"] == "not_required"
    event.refresh_from_db()
    assert event.seats_booked == 3
    seats_consistent(event)


def test_event_detail_shows_seats_left_and_early_access_window():
    user, _ = member(rank=3, early_access_hours=48)
    opens = timezone.now().replace(microsecond=0) + timedelta(hours=24)
    event = EventFactory(capacity=8, seats_booked=3, booking_opens_at=opens)
    body = api_as(user).get(f"events/{event.pk}").json()
    assert body["seats_left"] == 5
    assert body["bookable_from"].replace("Z", "+00:00") == (opens - timedelta(hours=48)).isoformat()


def test_guests_above_tier_allowance_are_refused_and_change_nothing():
    user, _ = member(guests=1)
    event = EventFactory(capacity=5)
    response = api_as(user).post(f"events/{event.pk}/bookings", {"guests": 2})
    assert response.status_code == 400
    assert response.json()["code"] == "too_many_guests"
    assert Booking.objects.count() == 0
    event.refresh_from_db()
    assert event.seats_booked == 0


def test_one_live_booking_per_member_per_event():
    user, _ = member()
    event = EventFactory(capacity=5)
    api = api_as(user)
    assert api.post(f"events/{event.pk}/bookings", {}).status_code == 201
    second = api.post(f"events/{event.pk}/bookings", {})
    assert second.status_code == 409
    assert second.json()["code"] == "already_booked"
    assert Booking.objects.count() == 1
    event.refresh_from_db()
    assert event.seats_booked == 1


def test_idempotency_key_retry_books_once():
    user, _ = member()
    event = EventFactory(capacity=5)
    api = api_as(user)
    headers = {"Idempotency-Key": "book-1"}
    first = api.post(f"events/{event.pk}/bookings", {"guests": 0}, headers=headers)
    retry = api.post(f"events/{event.pk}/bookings", {"guests": 0}, headers=headers)
    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert Booking.objects.count() == 1


def test_full_event_is_409_or_waitlist():
    user, _ = member()
    event = EventFactory(capacity=1, seats_booked=1)
    api = api_as(user)
    full = api.post(f"events/{event.pk}/bookings", {})
    assert full.status_code == 409
    assert full.json()["code"] == "event_full"
    assert Booking.objects.count() == 0
    waiting = api.post(f"events/{event.pk}/bookings", {"join_waitlist": True})
    assert waiting.status_code == 201
    assert waiting.json()["status"] == "waitlisted"
    event.refresh_from_db()
    assert event.seats_booked == 1


def test_control_customer_cannot_book_and_nothing_changes():
    user, membership = control_member()
    assert membership.group == Membership.Group.CONTROL
    event = EventFactory(capacity=5, min_tier_rank=0)
    api = api_as(user)
    response = api.post(f"events/{event.pk}/bookings", {})
    assert response.status_code == 403
    assert response.json()["code"] == "not_a_member"
    assert api.get("events").status_code == 403
    assert Booking.objects.count() == 0
    event.refresh_from_db()
    assert event.seats_booked == 0


def test_tier_below_minimum_gets_403_naming_the_tier_it_needs_and_cannot_book():
    silver = TierFactory(rank=1, name="Silver")
    TierFactory(programme=silver.programme, rank=2, name="Gold")
    TierFactory(programme=silver.programme, rank=4, name="Platinum")
    user, _ = member(tier=silver)
    gold_event = EventFactory(min_tier_rank=2)
    between = EventFactory(min_tier_rank=3)
    beyond_programme = EventFactory(min_tier_rank=9)
    draft = EventFactory(min_tier_rank=2, status=Event.Status.DRAFT)
    api = api_as(user)
    expected = {
        "detail": "This event is for Gold members and above; your tier is Silver.",
        "code": "tier_too_low",
        "fields": {"required_tier": "Gold", "required_tier_rank": 2, "your_tier": "Silver"},
    }
    for response in (api.get(f"events/{gold_event.pk}"), api.post(f"events/{gold_event.pk}/bookings", {})):
        assert (response.status_code, response.json()) == (403, expected)
    assert api.get(f"events/{between.pk}").json()["fields"]["required_tier"] == "Platinum"
    # No tier of the programme reaches it, or not published: nothing to know about.
    for hidden in (beyond_programme, draft):
        for response in (api.get(f"events/{hidden.pk}"), api.post(f"events/{hidden.pk}/bookings", {})):
            assert (response.status_code, response.json()["code"]) == (404, "event_not_found")
    assert api.get("events").json()["count"] == 0
    assert Booking.objects.count() == 0
    # A held-out customer learns nothing about tiers.
    control_user, _ = control_member(programme=silver.programme)
    response = api_as(control_user).get(f"events/{gold_event.pk}")
    assert (response.status_code, response.json()["code"]) == (403, "not_a_member")
    assert "Gold" not in response.content.decode()


def test_higher_tier_books_earlier_by_its_early_access_hours():
    gold_tier = TierFactory(rank=3, early_access_hours=48, guests_per_booking=0)
    silver_tier = TierFactory(programme=gold_tier.programme, rank=2, early_access_hours=0, guests_per_booking=0)
    _, gold = member(tier=gold_tier)
    _, silver = member(tier=silver_tier)
    event = EventFactory(booking_opens_at=NOW + timedelta(hours=24), capacity=5)
    gold_booking = booking_create(membership=gold, event_id=event.pk, now=NOW)
    assert gold_booking.status == Booking.Status.CONFIRMED
    from core.errors import BusinessRuleError

    with pytest.raises(BusinessRuleError) as refused:
        booking_create(membership=silver, event_id=event.pk, now=NOW)
    assert refused.value.code == "booking_not_open"
    assert booking_create(membership=silver, event_id=event.pk, now=NOW + timedelta(hours=24)).seats == 1


def test_list_shows_only_bookable_events_for_my_tier(django_assert_num_queries):
    user, _ = member(rank=2, early_access_hours=10)
    now = timezone.now()
    open_now = EventFactory(title="open")
    EventFactory(title="early access open", booking_opens_at=now + timedelta(hours=5))
    EventFactory(title="not yet", booking_opens_at=now + timedelta(hours=20))
    EventFactory(title="too exclusive", min_tier_rank=3)
    EventFactory(title="draft", status=Event.Status.DRAFT)
    EventFactory(title="closed", starts_at=now + timedelta(days=2), booking_closes_at=now - timedelta(hours=1))
    for _ in range(3):
        EventFactory()
    api = api_as(user)
    # session, user, membership (with the member role), page (it ends the list: no COUNT)
    with django_assert_num_queries(4):
        body = api.get("events?limit=50").json()
    titles = [item["title"] for item in body["items"]]
    assert body["count"] == 5
    assert "open" in titles and "early access open" in titles
    assert not {"not yet", "too exclusive", "draft", "closed"} & set(titles)
    assert open_now.pk in [item["id"] for item in body["items"]]


def test_my_bookings_lists_only_mine(django_assert_num_queries):
    user, membership = member()
    other_user, other = member()
    events = [EventFactory() for _ in range(4)]
    for event in events:
        booking_create(membership=membership, event_id=event.pk)
    other_booking = booking_create(membership=other, event_id=events[0].pk)
    api = api_as(user)
    with django_assert_num_queries(4):
        body = api.get("bookings").json()
    assert body["count"] == 4
    assert other_booking.pk not in [item["id"] for item in body["items"]]
    assert api.get(f"bookings/{other_booking.pk}").status_code == 404
    denied = api.post(f"bookings/{other_booking.pk}/cancel")
    assert denied.status_code == 404
    other_booking.refresh_from_db()
    assert other_booking.status == Booking.Status.CONFIRMED


def test_cancel_returns_seats_and_promotes_waitlist_in_tier_then_time_order():
    programme_tier_low = TierFactory(rank=1, guests_per_booking=0)
    high_tier = TierFactory(programme=programme_tier_low.programme, rank=3, guests_per_booking=1)
    event = EventFactory(capacity=2)
    holder_user, holder = member(tier=high_tier)
    booking = booking_create(membership=holder, event_id=event.pk, guests=1, now=NOW)
    _, low_first = member(tier=programme_tier_low)
    _, high_later = member(tier=high_tier)
    _, low_second = member(tier=programme_tier_low)
    w1 = booking_create(membership=low_first, event_id=event.pk, join_waitlist=True, now=NOW + timedelta(minutes=1))
    w2 = booking_create(membership=high_later, event_id=event.pk, join_waitlist=True, now=NOW + timedelta(minutes=2))
    w3 = booking_create(membership=low_second, event_id=event.pk, join_waitlist=True, now=NOW + timedelta(minutes=3))
    assert {w1.status, w2.status, w3.status} == {Booking.Status.WAITLISTED}
    response = api_as(holder_user).post(f"bookings/{booking.pk}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    statuses = {b.pk: b.status for b in Booking.objects.filter(pk__in=[w1.pk, w2.pk, w3.pk])}
    # Two seats freed: the higher tier first, then the earlier of the lower tier.
    assert statuses == {
        w2.pk: Booking.Status.CONFIRMED,
        w1.pk: Booking.Status.CONFIRMED,
        w3.pk: Booking.Status.WAITLISTED,
    }
    seats_consistent(event)


def test_waitlist_promotion_emails_the_member(django_capture_on_commit_callbacks):
    event = EventFactory(capacity=1)
    holder_user, holder = member()
    booking = booking_create(membership=holder, event_id=event.pk)
    _, waiting = member()
    promoted = booking_create(membership=waiting, event_id=event.pk, join_waitlist=True)
    with django_capture_on_commit_callbacks(execute=True):
        api_as(holder_user).post(f"bookings/{booking.pk}/cancel")
    promoted.refresh_from_db()
    assert promoted.status == Booking.Status.CONFIRMED
    assert [m.to for m in mail.outbox] == [[waiting.customer.user.email]]  # the verified login
    assert mail.outbox[0].subject == f"You're in: {event.title}"


def test_cancelled_booking_cannot_be_cancelled_again():
    user, membership = member()
    event = EventFactory()
    booking = booking_create(membership=membership, event_id=event.pk)
    api = api_as(user)
    assert api.post(f"bookings/{booking.pk}/cancel").status_code == 200
    again = api.post(f"bookings/{booking.pk}/cancel")
    assert again.status_code == 409
    assert again.json()["code"] == "booking_not_cancellable"
    event.refresh_from_db()
    assert event.seats_booked == 0


def test_paid_event_price_per_seat_in_amount():
    user, _ = member(guests=1)
    event = EventFactory(price=Decimal("25.50"), capacity=4)
    body = api_as(user).post(f"events/{event.pk}/bookings", {"guests": 1}).json()
    assert body["status"] == "held"
    assert body["amount"] == "51.00"
