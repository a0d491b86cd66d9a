from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.utils import timezone

from events.models import Booking, Event
from events.services.bookings import booking_create
from events.services.payments import stripe_event_apply
from loyalty.models import Interaction
from tests.conftest import api_as
from tests.events.factories import NOW, EventFactory, PartnerFactory, member, partner_staff
from tests.events.stripe_fake import intent_object

pytestmark = pytest.mark.django_db


def event_payload(**overrides):
    payload = {
        "title": "Private tasting",
        "venue": "Cellar",
        "starts_at": (NOW + timedelta(days=10)).isoformat(),
        "ends_at": (NOW + timedelta(days=10, hours=2)).isoformat(),
        "capacity": 20,
        "min_tier_rank": 2,
        "price": "0",
        "booking_opens_at": (NOW + timedelta(days=1)).isoformat(),
    }
    payload.update(overrides)
    return payload


def test_partner_creates_edits_and_publishes_an_event():
    staff = partner_staff()
    api = api_as(staff)
    created = api.post("partner/events", event_payload(), headers={"Idempotency-Key": "e1"})
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["status"] == "draft"
    assert Event.objects.get(pk=body["id"]).partner == staff.partner_staff.partner
    edited = api.patch(f"partner/events/{body['id']}", {"capacity": 30, "title": "Grand tasting"})
    assert edited.status_code == 200
    assert (edited.json()["capacity"], edited.json()["title"]) == (30, "Grand tasting")
    published = api.post(f"partner/events/{body['id']}/publish")
    assert published.json()["status"] == "published"
    assert api.post("partner/events", event_payload(), headers={"Idempotency-Key": "e1"}).json()["id"] == body["id"]
    assert Event.objects.count() == 1


def test_invalid_event_times_are_422_naming_fields():
    api = api_as(partner_staff())
    response = api.post("partner/events", event_payload(ends_at=(NOW + timedelta(days=9)).isoformat()))
    assert response.status_code == 422
    assert response.json()["fields"] == {"ends_at": ["Must be after starts_at."]}
    assert Event.objects.count() == 0


def test_capacity_cannot_drop_below_booked_and_price_locks_with_bookings():
    staff = partner_staff()
    event = EventFactory(partner=staff.partner_staff.partner, capacity=5, price=Decimal("10.00"))
    for _ in range(2):
        booking_create(membership=member()[1], event_id=event.pk)
    api = api_as(staff)
    assert api.patch(f"partner/events/{event.pk}", {"capacity": 0}).status_code == 422
    too_small = api.patch(f"partner/events/{event.pk}", {"capacity": 1})
    assert too_small.status_code == 400
    assert too_small.json()["code"] == "capacity_below_booked"
    assert api.patch(f"partner/events/{event.pk}", {"capacity": 2}).status_code == 200
    event.refresh_from_db()
    assert (event.capacity, event.seats_booked) == (2, 2)
    price = api.patch(f"partner/events/{event.pk}", {"price": "12.00"})
    assert price.status_code == 409
    assert price.json()["code"] == "price_locked"
    event.refresh_from_db()
    assert event.price == Decimal("10.00")


def test_capacity_increase_promotes_waitlist():
    staff = partner_staff()
    event = EventFactory(partner=staff.partner_staff.partner, capacity=1)
    _, first = member()
    _, second = member()
    booking_create(membership=first, event_id=event.pk)
    waiting = booking_create(membership=second, event_id=event.pk, join_waitlist=True)
    api_as(staff).patch(f"partner/events/{event.pk}", {"capacity": 2})
    waiting.refresh_from_db()
    assert waiting.status == Booking.Status.CONFIRMED


def test_partner_never_sees_or_edits_another_partners_events_or_bookings():
    mine = partner_staff()
    theirs = EventFactory(partner=PartnerFactory(), capacity=3)
    _, membership = member()
    booking = booking_create(membership=membership, event_id=theirs.pk)
    api = api_as(mine)
    assert api.get("partner/events").json() == {"items": [], "count": 0}
    calls = [
        api.get(f"partner/events/{theirs.pk}"),
        api.patch(f"partner/events/{theirs.pk}", {"title": "Hijacked"}),
        api.post(f"partner/events/{theirs.pk}/publish"),
        api.post(f"partner/events/{theirs.pk}/cancel"),
        api.get(f"partner/events/{theirs.pk}/bookings"),
        api.post(f"partner/bookings/{booking.pk}/check-in"),
    ]
    assert [c.status_code for c in calls] == [404] * 6
    theirs.refresh_from_db()
    booking.refresh_from_db()
    assert (theirs.title, theirs.status) == (theirs.title, Event.Status.PUBLISHED)
    assert theirs.title != "Hijacked"
    assert booking.status == Booking.Status.CONFIRMED


def test_members_and_unlinked_staff_cannot_use_partner_api():
    member_user, _ = member()
    assert api_as(member_user).get("partner/events").status_code == 403
    from tests.factories import UserFactory

    unlinked = UserFactory(roles=["partner_staff"])
    response = api_as(unlinked).post("partner/events", event_payload())
    assert response.status_code == 403
    assert response.json()["code"] == "no_partner"
    assert Event.objects.count() == 0


def test_bookings_list_shows_names_only_with_constant_queries(django_assert_num_queries):
    staff = partner_staff()
    event = EventFactory(partner=staff.partner_staff.partner, capacity=10)
    memberships = [member()[1] for _ in range(4)]
    for membership in memberships:
        booking_create(membership=membership, event_id=event.pk)
    api = api_as(staff)
    # session, user, roles, partner link, event exists, page (it ends the list: no COUNT)
    with django_assert_num_queries(6):
        body = api.get(f"partner/events/{event.pk}/bookings").json()
    assert body["count"] == 4
    assert set(body["items"][0]) == {"id", "attendee_name", "seats", "status", "created_at", "checked_in_at"}
    assert sorted(item["attendee_name"] for item in body["items"]) == sorted(m.customer.name for m in memberships)
    with django_assert_num_queries(5):
        events = api.get("partner/events").json()
    assert events["items"][0]["confirmed_count"] == 4
    assert events["items"][0]["seats_booked"] == 4


def test_check_in_is_idempotent_and_records_one_interaction():
    staff = partner_staff()
    # Check-in opens two hours before the start (the API runs on the real clock).
    event = EventFactory(partner=staff.partner_staff.partner, starts_at=timezone.now() + timedelta(hours=1))
    _, membership = member()
    booking = booking_create(membership=membership, event_id=event.pk)
    api = api_as(staff)
    first = api.post(f"partner/bookings/{booking.pk}/check-in")
    second = api.post(f"partner/bookings/{booking.pk}/check-in")
    assert first.status_code == second.status_code == 200
    assert first.json()["status"] == "attended"
    assert first.json()["checked_in_at"] == second.json()["checked_in_at"]
    (interaction,) = Interaction.objects.all()
    assert (interaction.customer_id, interaction.channel, interaction.kind, interaction.external_id) == (
        membership.customer_id,
        "event",
        "event_attended",
        f"event-booking-{booking.pk}",
    )


def test_waitlisted_booking_cannot_be_checked_in():
    staff = partner_staff()
    event = EventFactory(partner=staff.partner_staff.partner, capacity=1, seats_booked=1)
    _, membership = member()
    booking = booking_create(membership=membership, event_id=event.pk, join_waitlist=True)
    response = api_as(staff).post(f"partner/bookings/{booking.pk}/check-in")
    assert response.status_code == 409
    assert response.json()["code"] == "booking_not_checkable"
    assert Interaction.objects.count() == 0


def test_event_cancellation_cancels_bookings_refunds_paid_and_notifies(fake_stripe, django_capture_on_commit_callbacks):
    staff = partner_staff()
    event = EventFactory(partner=staff.partner_staff.partner, capacity=2, price=Decimal("15.00"))
    paid_user, paid = member()
    _, unpaid = member()
    _, waiting = member()
    paid_booking = booking_create(membership=paid, event_id=event.pk)
    paid_api = api_as(paid_user)
    intent_id = paid_api.post(f"bookings/{paid_booking.pk}/payment").json()["payment_intent_id"]
    stripe_event_apply(
        event_id="evt_paid",
        event_type="payment_intent.succeeded",
        data_object=intent_object(intent_id, status="succeeded", amount=1500),
    )
    held_booking = booking_create(membership=unpaid, event_id=event.pk)
    waitlisted = booking_create(membership=waiting, event_id=event.pk, join_waitlist=True)
    with django_capture_on_commit_callbacks(execute=True):
        response = api_as(staff).post(f"partner/events/{event.pk}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert response.json()["seats_booked"] == 0
    statuses = dict(Booking.objects.values_list("pk", "status"))
    assert statuses == {
        paid_booking.pk: "cancelled",
        held_booking.pk: "cancelled",
        waitlisted.pk: "cancelled",
    }
    paid_booking.refresh_from_db()
    assert paid_booking.payment_status == Booking.PaymentStatus.REFUNDED
    assert paid_booking.refunded_amount == Decimal("15.00")
    (refund_call,) = fake_stripe.calls_to("POST", "/v1/refunds")
    assert refund_call[2]["amount"] == "1500"
    assert sorted(m.to[0] for m in mail.outbox) == sorted(m.customer.user.email for m in (paid, unpaid, waiting))
    assert all(m.subject == f"Event cancelled: {event.title}" for m in mail.outbox)
    # Cancelling again changes nothing.
    with django_capture_on_commit_callbacks(execute=True):
        assert api_as(staff).post(f"partner/events/{event.pk}/cancel").status_code == 200
    assert len(fake_stripe.calls_to("POST", "/v1/refunds")) == 1
    assert len(mail.outbox) == 3


def test_money_is_a_plain_two_place_decimal_with_its_currency_for_partners_and_members():
    staff = partner_staff()
    api = api_as(staff)
    payload = event_payload(price="12.5", currency="usd", min_tier_rank=1, booking_opens_at="2020-01-01T00:00:00Z")
    created = api.post("partner/events", payload, headers={"Idempotency-Key": "money"})
    replay = api.post("partner/events", payload, headers={"Idempotency-Key": "money"})
    edited = api.patch(f"partner/events/{created.json()['id']}", {"price": "7"})
    for response, price in ((created, "12.50"), (replay, "12.50"), (edited, "7.00")):
        assert (response.json()["price"], response.json()["currency"]) == (price, "USD")
    api.post(f"partner/events/{created.json()['id']}/publish")
    user, _ = member()
    detail = api_as(user).get(f"events/{created.json()['id']}").json()
    assert (detail["price"], detail["currency"]) == ("7.00", "USD")
    booking = api_as(user).post(f"events/{created.json()['id']}/bookings", {}).json()
    assert (booking["amount"], booking["refund_amount"], booking["refunded_amount"], booking["currency"]) == (
        "7.00",
        "0.00",
        "0.00",
        "USD",
    )
