"""Exact query counts of every member operation of bench/api_load.py (issue 16), and the member context
resolved once per request.

The token costs 2 queries (the session row, the user); a member operation then reads the member context once
(the membership joined with programme, tiers and customer, the member role as an EXISTS) and does its own work.
List endpoints are measured at two list sizes: the count does not grow with the rows. A page shorter than its
limit ends the list and tells the count itself (core.pagination.Page): no COUNT query."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from concierge.models import ConciergeRequest
from events.models import Booking
from events.services.bookings import booking_create
from loyalty.models import Interaction
from tests.conftest import api_as
from tests.events.factories import EventFactory, control_member, member
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _membership_queries(queries) -> int:
    # On PostgreSQL the member context runs as a prepared statement (core.rows.Statement).
    return sum(1 for q in queries if 'FROM "loyalty_membership"' in q["sql"] or "premier_member_context" in q["sql"])


def test_me_is_the_floor_session_user_roles(django_assert_num_queries):
    user, _ = member()
    api = api_as(user)
    with django_assert_num_queries(3):  # session, user, roles
        body = api.get("me").json()
    assert body["roles"] == ["member"]
    assert body["id"] == user.pk


@pytest.mark.parametrize("events", [2, 30])
def test_event_list_takes_four_queries_whatever_its_length(django_assert_num_queries, events):
    user, _ = member()
    for _ in range(events):
        EventFactory()
    api = api_as(user)
    with django_assert_num_queries(4):  # session, user, member context, page (it ends the list: no COUNT)
        body = api.get("events?limit=50").json()
    assert body["count"] == events
    assert len(body["items"]) == events


def test_a_full_page_of_events_adds_the_count(django_assert_num_queries):
    user, _ = member()
    for _ in range(5):
        EventFactory()
    api = api_as(user)
    with django_assert_num_queries(5):  # session, user, member context, page, COUNT
        body = api.get("events?limit=3").json()
    assert (body["count"], len(body["items"])) == (5, 3)
    with django_assert_num_queries(4):  # the last page ends the list
        body = api.get("events?limit=3&offset=3").json()
    assert (body["count"], len(body["items"])) == (5, 2)
    with django_assert_num_queries(5):  # an empty page past the end cannot tell the count
        body = api.get("events?limit=3&offset=9").json()
    assert (body["count"], body["items"]) == (5, [])


def test_event_detail_takes_four_queries(django_assert_num_queries):
    user, _ = member()
    event = EventFactory(capacity=12)
    api = api_as(user)
    with django_assert_num_queries(4):  # session, user, member context, event
        body = api.get(f"events/{event.pk}").json()
    assert (body["id"], body["seats_left"]) == (event.pk, 12)


def test_my_membership_takes_four_queries(django_assert_num_queries):
    user, membership = member()
    api = api_as(user)
    # session, user, member context, the programme's tiers with the allowance used and the metric of the latest run
    with django_assert_num_queries(4):
        body = api.get("me/membership").json()
    assert body["tier"] == {"name": membership.tier.name, "rank": membership.tier.rank}
    assert body["allowance"]["used"] == 0


@pytest.mark.parametrize("bookings", [1, 12])
def test_my_bookings_take_four_queries_whatever_their_number(django_assert_num_queries, bookings):
    user, membership = member()
    for _ in range(bookings):
        booking_create(membership=membership, event_id=EventFactory().pk)
    api = api_as(user)
    with django_assert_num_queries(4):  # session, user, member context, page (it ends the list: no COUNT)
        body = api.get("bookings").json()
    assert body["count"] == bookings
    assert len(body["items"]) == bookings


def test_booking_takes_eleven_queries_and_reads_the_membership_once(django_assert_num_queries):
    user, membership = member()
    event = EventFactory(capacity=5)
    api = api_as(user)
    # session, user, member context; 2 savepoints (the request's transaction and the service's), the event with
    # an EXISTS for a live booking of mine, the seat UPDATE, the booking INSERT, the outbox INSERT, 2 releases.
    with django_assert_num_queries(11) as captured:
        response = api.post(f"events/{event.pk}/bookings", {"guests": 0})
    assert response.status_code == 201, response.content
    assert _membership_queries(captured.captured_queries) == 1
    booking = Booking.objects.get()
    assert (booking.membership_id, booking.event_id, booking.status) == (membership.pk, event.pk, "confirmed")
    event.refresh_from_db()
    assert event.seats_booked == 1


def test_second_booking_of_the_same_event_is_refused_from_the_same_query():
    user, _ = member()
    event = EventFactory(capacity=5)
    api = api_as(user)
    assert api.post(f"events/{event.pk}/bookings", {"guests": 0}).status_code == 201
    with CaptureQueriesContext(connection) as captured:
        again = api.post(f"events/{event.pk}/bookings", {"guests": 0})
    assert (again.status_code, again.json()["code"]) == (409, "already_booked")
    assert not any(q["sql"].startswith("UPDATE") for q in captured.captured_queries)  # no seat was taken
    event.refresh_from_db()
    assert event.seats_booked == 1


def test_concierge_request_takes_thirteen_queries_and_reads_the_membership_once(django_assert_num_queries):
    user, membership = member(monthly_request_allowance=3)
    api = api_as(user)
    # session, user, member context; 2 savepoints (the request's transaction and the service's); the allowance
    # (one conditional upsert); the request and audit INSERTs; the interaction (one INSERT ... ON CONFLICT DO
    # NOTHING RETURNING), its rollup (upsert, stale scoring state); 2 releases.
    with django_assert_num_queries(13) as captured:
        response = api.post("concierge/requests", {"category": "dining", "subject": "A table for two"})
    assert response.status_code == 201, response.content
    assert _membership_queries(captured.captured_queries) == 1
    request = ConciergeRequest.objects.get()
    assert (request.membership_id, request.tier_id, request.subject) == (
        membership.pk,
        membership.tier_id,
        "A table for two",
    )
    assert Interaction.objects.filter(customer=membership.customer, channel="concierge").count() == 1


def test_member_context_refuses_as_before():
    """One query decides both the membership and the role; the refusals keep their codes."""
    stranger = api_as(UserFactory(roles=["member"]))
    assert stranger.get("events").json()["code"] == "not_a_member"
    no_role = UserFactory()
    _, membership = member()
    membership.customer.user = no_role
    membership.customer.save(update_fields=["user"])
    assert api_as(no_role).get("events").json()["code"] == "role_required"
    assert api_as(no_role).get("me/membership").json()["code"] == "no_membership"
    control_user, _ = control_member()
    control = api_as(control_user)
    assert control.get("events").json()["code"] == "not_a_member"
    refused = control.post("concierge/requests", {"category": "dining", "subject": "x"})
    assert (refused.status_code, refused.json()["code"]) == (403, "not_a_member")
    assert ConciergeRequest.objects.count() == 0


def test_an_expired_or_deleted_session_token_is_refused():
    user, _ = member()
    api = api_as(user)
    token = api.headers["X-Session-Token"]
    assert api.get("me").status_code == 200
    Session.objects.filter(session_key=token).update(expire_date=timezone.now() - timedelta(seconds=1))
    assert api.get("me").status_code == 401
    Session.objects.filter(session_key=token).delete()
    assert api.get("me").status_code == 401
