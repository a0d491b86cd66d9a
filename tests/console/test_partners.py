"""Partner staff pages: events, create/edit with errors beside fields, publish, cancel with its effects spelled
out, bookings and check-in by name or code; another partner's event stays out of reach."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from events.models import Booking, Event
from events.services.bookings import booking_create
from tests.console.conftest import client_for
from tests.events.factories import EventFactory, PartnerFactory, member, partner_staff
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

FORM = {
    "title": "Wine tasting",
    "description": "Six wines",
    "venue": "Cellar",
    "starts_at": "2031-05-01T19:00",
    "ends_at": "2031-05-01T22:00",
    "capacity": "20",
    "min_tier_rank": "1",
    "price": "0",
    "currency": "eur",
    "booking_opens_at": "2031-04-01T09:00",
    "booking_closes_at": "",
    "full_refund_hours": "48",
    "late_refund_percent": "0",
}


@pytest.fixture
def staff():
    return partner_staff(PartnerFactory(name="Grand Hotel"))


def _event(staff, **kw):
    from events.models import PartnerStaff

    partner = PartnerStaff.objects.get(user=staff).partner
    return EventFactory(partner=partner, **kw)


def test_events_list_shows_own_events_with_counts_in_bounded_queries(staff, django_assert_max_num_queries):
    for i in range(30):
        _event(staff, title=f"Own {i:02d}")
    EventFactory(title="Somebody else's")
    client = client_for(staff)
    with django_assert_max_num_queries(7):
        response = client.get("/console/partner/events/")
    assert response.status_code == 200
    titles = [e.title for e in response.context["page"]]
    assert len(titles) == 25 and "Somebody else's" not in titles
    assert response.context["page"].paginator.count == 30
    drafts = client.get("/console/partner/events/?status=draft").context["page"]
    assert list(drafts) == []


def test_create_saves_a_draft(staff):
    response = client_for(staff).post("/console/partner/events/new/", FORM)
    event = Event.objects.get(title="Wine tasting")
    assert response.status_code == 302 and response["Location"] == f"/console/partner/events/{event.pk}/"
    assert (event.status, event.capacity, event.currency, event.created_by_id) == ("draft", 20, "EUR", staff.pk)


def test_service_validation_errors_appear_beside_their_fields_and_nothing_is_saved(staff):
    bad = {**FORM, "ends_at": "2031-05-01T18:00", "booking_opens_at": "2031-05-02T09:00"}
    response = client_for(staff).post("/console/partner/events/new/", bad)
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert errors["ends_at"] == ["Must be after starts_at."]
    assert errors["booking_opens_at"] == ["Must be before starts_at."]
    assert errors["__all__"] == ["The event is not valid."]
    content = response.content.decode()
    assert (
        'aria-invalid="true" aria-describedby="id_ends_at_error" id="id_ends_at">'
        '<ul class="errorlist" id="id_ends_at_error"><li>Must be after starts_at.</li></ul>'
    ) in content
    assert not Event.objects.exists()


def test_form_errors_before_the_service(staff):
    response = client_for(staff).post("/console/partner/events/new/", {**FORM, "capacity": "0", "title": ""})
    assert response.status_code == 400
    assert response.context["form"].errors == {
        "title": ["This field is required."],
        "capacity": ["Ensure this value is greater than or equal to 1."],
    }


def test_edit_and_publish(staff):
    event = _event(staff, status=Event.Status.DRAFT, starts_at=timezone.now() + timedelta(days=10))
    client = client_for(staff)
    page = client.get(f"/console/partner/events/{event.pk}/edit/")
    assert page.status_code == 200 and page.context["form"].initial["title"] == event.title
    data = {
        **FORM,
        "title": "Renamed",
        "starts_at": (event.starts_at).strftime("%Y-%m-%dT%H:%M"),
        "ends_at": (event.ends_at).strftime("%Y-%m-%dT%H:%M"),
        "booking_opens_at": "2026-01-01T00:00",
    }
    assert client.post(f"/console/partner/events/{event.pk}/edit/", data).status_code == 302
    assert client.post(f"/console/partner/events/{event.pk}/publish/").status_code == 302
    event.refresh_from_db()
    assert (event.title, event.status) == ("Renamed", "published")


def test_cancel_spells_out_the_effects_then_cancels(staff):
    event = _event(staff, capacity=2, starts_at=timezone.now() + timedelta(days=10))
    (_, m1), (_, m2), (_, m3) = member(guests=0), member(guests=0), member(guests=0)
    booked = booking_create(membership=m1, event_id=event.pk)
    paid = booking_create(membership=m2, event_id=event.pk)
    Booking.objects.filter(pk=paid.pk).update(amount=Decimal("40.00"), paid_at=timezone.now())
    booking_create(membership=m3, event_id=event.pk, join_waitlist=True)
    client = client_for(staff)
    page = client.get(f"/console/partner/events/{event.pk}/cancel/")
    text = " ".join(page.content.decode().split())
    assert "cancel <strong>2</strong> confirmed bookings (2 seats);" in text
    assert "close the waitlist of <strong>1</strong> member;" in text
    assert "refund <strong>1</strong> paid booking in full (40.00 EUR in all);" in text
    assert "email the <strong>3</strong> members concerned" in text
    event.refresh_from_db()
    assert event.status == "published"  # looking changes nothing
    Booking.objects.filter(pk=paid.pk).update(amount=Decimal("0"), paid_at=None)
    assert client.post(f"/console/partner/events/{event.pk}/cancel/").status_code == 302
    event.refresh_from_db()
    booked.refresh_from_db()
    assert (event.status, booked.status) == ("cancelled", "cancelled")


def test_bookings_search_by_name_or_code_and_check_in_in_the_window(staff):
    event = _event(staff, starts_at=timezone.now() + timedelta(minutes=30))
    (_, ada), (_, bob) = member(guests=0), member(guests=0)
    ada.customer.name, bob.customer.name = "Ada Lovelace", "Bob Builder"
    ada.customer.save(update_fields=["name"])
    bob.customer.save(update_fields=["name"])
    a = booking_create(membership=ada, event_id=event.pk)
    b = booking_create(membership=bob, event_id=event.pk)
    client = client_for(staff)
    by_name = client.get(f"/console/partner/events/{event.pk}/?q=lovelace")
    assert [x.pk for x in by_name.context["page"]] == [a.pk]
    by_code = client.get(f"/console/partner/events/{event.pk}/?q=B-{b.pk}")
    assert [x.pk for x in by_code.context["page"]] == [b.pk]
    assert by_code.context["checkin_open"] is True
    response = client.post(f"/console/partner/events/{event.pk}/bookings/{a.pk}/check-in/", {"back": "q=lovelace"})
    assert response["Location"] == f"/console/partner/events/{event.pk}/?q=lovelace"
    a.refresh_from_db()
    assert (a.status, a.checked_in_by_id) == ("attended", staff.pk)


def test_check_in_before_the_window_says_when_it_opens_and_changes_nothing(staff):
    event = _event(staff, starts_at=timezone.now() + timedelta(days=3))
    _, m = member(guests=0)
    booking = booking_create(membership=m, event_id=event.pk)
    client = client_for(staff)
    response = client.post(f"/console/partner/events/{event.pk}/bookings/{booking.pk}/check-in/", follow=True)
    assert "Check-in opens at" in response.content.decode()
    booking.refresh_from_db()
    assert booking.status == "confirmed"


def test_another_partners_event_is_404_everywhere_and_nothing_changes(staff):
    other = EventFactory(status=Event.Status.DRAFT, starts_at=timezone.now() + timedelta(days=5))
    client = client_for(staff)
    for url in ("", "edit/", "cancel/"):
        assert client.get(f"/console/partner/events/{other.pk}/{url}").status_code == 404
    assert client.post(f"/console/partner/events/{other.pk}/publish/").status_code == 302
    assert client.post(f"/console/partner/events/{other.pk}/cancel/").status_code == 404
    assert client.post(f"/console/partner/events/{other.pk}/edit/", FORM).status_code == 404
    other.refresh_from_db()
    assert (other.status, other.title) == ("draft", other.title)
    assert other.status == "draft"


@pytest.mark.parametrize("role", ["concierge_agent", "programme_manager", "member"])
def test_non_partners_are_refused(role, staff):
    event = _event(staff, status=Event.Status.DRAFT)
    client = client_for(UserFactory(roles=[role]))
    for url in ("", "new/", f"{event.pk}/", f"{event.pk}/edit/", f"{event.pk}/cancel/"):
        assert client.get(f"/console/partner/events/{url}").status_code == 403
    assert client.post(f"/console/partner/events/{event.pk}/publish/").status_code == 403
    event.refresh_from_db()
    assert event.status == "draft"


def test_partner_staff_without_a_partner_link_is_told(client):
    user = UserFactory(roles=["partner_staff"])
    response = client_for(user).get("/console/partner/events/")
    assert response.status_code == 403
    assert "Your account is not linked to a partner." in response.content.decode()
