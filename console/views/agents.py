"""Concierge agents: the queue and a request's page with its actions. Views parse forms and call the concierge
services and selectors the API uses; a service's error is shown beside the field it concerns."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.models import Role
from concierge import selectors
from concierge.models import OPEN_STATUSES, RequestStatus
from concierge.services import assignment
from concierge.services import messages as conversation
from concierge.services import requests as request_services
from console import forms
from console.access import console_view
from console.errors import form_error
from console.selectors import request_status_counts
from core.errors import PremierError

PAGE_SIZE = 25
agent_only = console_view(Role.CONCIERGE_AGENT)


@agent_only
def queue(request):
    form = forms.QueueFilterForm(request.GET or None)
    qs = selectors.agent_queue(**form.selector_kwargs(request.user)) if form.is_bound else selectors.agent_queue()
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "form": form,
        "page": page,
        "counts": request_status_counts(),
        "now": timezone.now(),
        "query": query.urlencode(),
    }
    return render(request, "console/agents/queue.html", context)


def _version(req) -> str:
    return req.updated_at.isoformat()


def _detail(request, request_id: int, *, bound: dict | None = None, status: int = 200):
    req = selectors.agent_request_get(request_id=request_id)
    version = {"version": _version(req)}
    allowed = request_services.TRANSITIONS.get(req.status, ())
    agents = list(selectors.agent_directory())
    bound = bound or {}
    # The audit stores assignees by id: show the agent's name (inactive ones keep their id).
    names = {str(a.pk): a.get_full_name() or a.email for a in agents}
    events = list(selectors.request_events(request_id=req.pk).select_related("actor"))
    for event in events:
        event.shown_old, event.shown_new = event.old_value, event.new_value
        if event.field == "assignee":
            event.shown_old = names.get(event.old_value, event.old_value)
            event.shown_new = names.get(event.new_value, event.new_value)
    context = {
        "req": req,
        "sla": selectors.sla_status(request=req),
        "events": events,
        "is_open": req.status in OPEN_STATUSES,
        "reply_form": bound.get("reply") or forms.MessageForm(initial=version, prefix="reply"),
        "note_form": bound.get("note") or forms.NoteForm(initial=version, prefix="note"),
        "assign_form": bound.get("assign") or forms.AssignForm(initial=version, agents=agents, prefix="assign"),
        "transition_form": bound.get("transition")
        or forms.TransitionForm(initial=version, allowed=allowed, prefix="transition"),
        # Errors of the bare "assign to me" and "unassign" buttons (they have no fields of their own).
        "assign_notice": bound.get("assign_notice"),
        "version": version["version"],
        "allowed": allowed,
    }
    return render(request, "console/agents/request.html", context, status=status)


@agent_only
def request_page(request, request_id: int):
    try:
        return _detail(request, request_id)
    except PremierError as exc:
        return render(request, "console/error.html", {"error": exc}, status=exc.status_code)


def _conflict(form, req) -> bool:
    """True (and the form says so) if the request changed after the page that sent the form was shown."""
    if form.cleaned_data["version"] == _version(req):
        return False
    last = selectors.request_events(request_id=req.pk).select_related("actor").last()
    who = (last.actor.get_full_name() or last.actor.email) if last and last.actor else "the system"
    what = last.get_action_display().lower() if last else "changed it"
    form.add_error(
        None,
        f"Someone else changed this request while you were looking at it ({who}: {what}). Nothing was saved: "
        "read the page as it is now and try again.",
    )
    form.data = form.data.copy()
    form.data[form.add_prefix("version")] = _version(req)
    return True


def _act(request, request_id: int, *, key: str, form, action, success: str, field_map=None):
    """Validate, check for a conflicting change, call the service; on any refusal show the page with the
    form and its errors (nothing changed), else back to the page with a confirmation."""
    try:
        req = selectors.agent_request_get(request_id=request_id)
    except PremierError as exc:
        return render(request, "console/error.html", {"error": exc}, status=exc.status_code)
    if form.is_valid() and not _conflict(form, req):
        try:
            action(form.cleaned_data)
        except PremierError as exc:
            form_error(form, exc, field_map=field_map)
            return _detail(request, request_id, bound={key: form}, status=exc.status_code)
        messages.success(request, success)
        return redirect(reverse("console:agent-request", args=[request_id]))
    return _detail(
        request, request_id, bound={key: form}, status=409 if form.is_valid() or form.non_field_errors() else 400
    )


@agent_only
@require_POST
def assign_me(request, request_id: int):
    form = forms.VersionedForm(request.POST)
    return _act(
        request,
        request_id,
        key="assign_notice",
        form=form,
        action=lambda data: assignment.request_assign(request_id=request_id, actor=request.user),
        success="The request is assigned to you.",
    )


@agent_only
@require_POST
def assign(request, request_id: int):
    form = forms.AssignForm(request.POST, agents=selectors.agent_directory(), prefix="assign")
    return _act(
        request,
        request_id,
        key="assign",
        form=form,
        action=lambda data: assignment.request_assign(
            request_id=request_id, actor=request.user, assignee_id=data["assignee_id"]
        ),
        success="The request is assigned.",
    )


@agent_only
@require_POST
def unassign(request, request_id: int):
    form = forms.VersionedForm(request.POST)
    return _act(
        request,
        request_id,
        key="assign_notice",
        form=form,
        action=lambda data: assignment.request_unassign(request_id=request_id, actor=request.user),
        success="Nobody is assigned now.",
    )


@agent_only
@require_POST
def reply(request, request_id: int):
    form = forms.MessageForm(request.POST, prefix="reply")
    return _act(
        request,
        request_id,
        key="reply",
        form=form,
        action=lambda data: conversation.message_agent_reply(
            request_id=request_id, agent=request.user, body=data["body"]
        ),
        success="Your reply is sent to the member.",
    )


@agent_only
@require_POST
def note(request, request_id: int):
    form = forms.NoteForm(request.POST, prefix="note")
    return _act(
        request,
        request_id,
        key="note",
        form=form,
        action=lambda data: conversation.note_add(request_id=request_id, agent=request.user, body=data["body"]),
        success="The note is added.",
    )


@agent_only
@require_POST
def transition(request, request_id: int):
    # Any status parses: the conflict check and the state machine (409 `invalid_transition`) decide.
    form = forms.TransitionForm(request.POST, allowed=RequestStatus.values, prefix="transition")
    return _act(
        request,
        request_id,
        key="transition",
        form=form,
        action=lambda data: request_services.request_transition(
            request_id=request_id, actor=request.user, to_status=data["to_status"], note=data["note"]
        ),
        success="The status is changed.",
        field_map={"to": "to_status"},
    )
