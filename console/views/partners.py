"""Partner staff: their events, create and edit, publish and cancel, bookings and check-in. Every read and
write goes through the events selectors and services with the user's own partner: another partner's event
is a 404, as in the API."""

from __future__ import annotations

from functools import wraps

from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.models import Role
from console import forms
from console.access import console_view
from console.errors import form_error
from console.selectors import booking_search, cancellation_effects
from core.errors import PremierError
from events import selectors
from events.models import Event
from events.services import partners as partner_services

PAGE_SIZE = 25


def partner_view(view):
    """Partner staff only; the view gets the user's partner. Service errors become a page that says why."""

    @console_view(Role.PARTNER_STAFF)
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        try:
            partner = partner_services.partner_for_user(request.user)
            return view(request, partner, *args, **kwargs)
        except PremierError as exc:
            return render(request, "console/error.html", {"error": exc}, status=exc.status_code)

    return wrapped


def _event_url(event_id: int) -> str:
    return reverse("console:partner-event", args=[event_id])


@partner_view
def events(request, partner):
    status = request.GET.get("status") or None
    if status not in Event.Status.values:
        status = None
    page = Paginator(selectors.partner_events(partner=partner, status=status), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    context = {
        "partner": partner,
        "page": page,
        "status": status or "",
        "statuses": Event.Status.choices,
        "query": f"status={status}" if status else "",
    }
    return render(request, "console/partners/events.html", context)


@partner_view
def event_new(request, partner):
    form = forms.EventForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            event = partner_services.event_create(partner=partner, created_by=request.user, data=form.cleaned_data)
        except PremierError as exc:
            form_error(form, exc)
        else:
            messages.success(request, f"The draft “{event.title}” is saved. Publish it when it is ready.")
            return redirect(_event_url(event.pk))
    status = 400 if form.errors else 200
    return render(request, "console/partners/event_form.html", {"form": form, "event": None}, status=status)


@partner_view
def event_edit(request, partner, event_id: int):
    event = selectors.partner_event(partner=partner, event_id=event_id)
    form = forms.EventForm(request.POST or None, initial=forms.EventForm.initial_from(event))
    if request.method == "POST" and form.is_valid():
        try:
            partner_services.event_update(partner=partner, event_id=event.pk, data=form.cleaned_data)
        except PremierError as exc:
            form_error(form, exc)
        else:
            messages.success(request, "The event is saved.")
            return redirect(_event_url(event.pk))
    status = 400 if form.errors else 200
    return render(request, "console/partners/event_form.html", {"form": form, "event": event}, status=status)


@partner_view
def event_detail(request, partner, event_id: int):
    event = selectors.partner_event(partner=partner, event_id=event_id)
    search = forms.BookingSearchForm(request.GET or None)
    data = search.cleaned_data if search.is_valid() else {}
    bookings = selectors.partner_event_bookings(partner=partner, event_id=event.pk, status=data.get("status") or None)
    bookings = booking_search(bookings, data.get("q", ""))
    page = Paginator(bookings, PAGE_SIZE).get_page(request.GET.get("page"))
    opens, closes = partner_services.checkin_window(event)
    now = timezone.now()
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "event": event,
        "search": search,
        "page": page,
        "query": query.urlencode(),
        "checkin_opens": opens,
        "checkin_closes": closes,
        "checkin_open": event.status == Event.Status.PUBLISHED and opens <= now < closes,
        "seats_free": max(event.capacity - event.seats_booked, 0),
    }
    return render(request, "console/partners/event_detail.html", context)


@partner_view
@require_POST
def event_publish(request, partner, event_id: int):
    try:
        event = partner_services.event_publish(partner=partner, event_id=event_id)
    except PremierError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, f"“{event.title}” is published: members of the eligible tiers can see it.")
    return redirect(_event_url(event_id))


@partner_view
def event_cancel(request, partner, event_id: int):
    """GET: what cancelling does, spelled out; POST: cancel."""
    event = selectors.partner_event(partner=partner, event_id=event_id)
    if request.method == "POST":
        try:
            partner_services.event_cancel(partner=partner, event_id=event.pk)
        except PremierError as exc:
            messages.error(request, exc.detail)
        else:
            messages.success(request, f"“{event.title}” is cancelled; its bookings are cancelled and members told.")
        return redirect(_event_url(event.pk))
    effects = cancellation_effects(selectors.partner_event_bookings(partner=partner, event_id=event.pk))
    return render(request, "console/partners/event_cancel.html", {"event": event, "effects": effects})


@partner_view
@require_POST
def booking_check_in(request, partner, event_id: int, booking_id: int):
    selectors.partner_event(partner=partner, event_id=event_id)
    try:
        booking = partner_services.booking_check_in(partner=partner, booking_id=booking_id, by=request.user)
    except PremierError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, f"{booking.membership.customer.name} (B-{booking.pk}) is checked in.")
    back = request.POST.get("back", "")
    return redirect(_event_url(event_id) + (f"?{back}" if back and "//" not in back else ""))
