"""Programme managers: programmes and tiers, enrolment of a segment run (power figures before confirming, then
its progress), memberships with tier overrides, and the way to the impact dashboard and its CSV exports.
Every read and write goes through the loyalty programmes selectors and services the API uses."""

from __future__ import annotations

from functools import wraps

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Prefetch
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.models import Role
from console import forms
from console.access import console_view
from console.errors import form_error
from core.csv_stream import csv_response
from core.errors import NotFound, PremierError
from loyalty.programmes.models import Enrolment, Programme, Tier
from loyalty.programmes.selectors.members import effective_tier
from loyalty.programmes.selectors.programmes import (
    membership_get,
    memberships_list,
    programme_get,
    programme_group_counts,
    tier_changes_list,
    tier_get,
)
from loyalty.programmes.services import enrolment as enrolment_services
from loyalty.programmes.services import programmes as programme_services
from loyalty.programmes.services import tier_policy
from loyalty.retention.services.impact_output import CSV_TABLES
from loyalty.segmentation.models import RunStatus, SegmentRun

PAGE_SIZE = 25
ENROLABLE_RUNS = 100
IMPACT_CSV_TABLES = CSV_TABLES  # the impact report's tables the API exports as CSV


def programme_view(view):
    """Programme managers only; the view gets the programme (a missing one is the console's 404 page)."""

    @console_view(Role.PROGRAMME_MANAGER)
    @wraps(view)
    def wrapped(request, programme_id: int, *args, **kwargs):
        try:
            programme = programme_get(programme_id)
            return view(request, programme, *args, **kwargs)
        except NotFound as exc:
            return render(request, "console/error.html", {"error": exc}, status=exc.status_code)

    return wrapped


def _programme_url(programme_id: int) -> str:
    return reverse("console:manager-programme", args=[programme_id])


def _tiers(programme: Programme) -> list[Tier]:
    return list(Tier.objects.filter(programme=programme).order_by("rank"))


def _programmes_page(request) -> dict:
    """The programmes (name filter, paginated) with their tiers in one more query."""
    search = forms.NameSearchForm(request.GET or None)
    tiers = Prefetch("tiers", queryset=Tier.objects.order_by("rank"))
    programmes = search.narrow(Programme.objects.prefetch_related(tiers).order_by("name", "id"))
    page = Paginator(programmes, PAGE_SIZE).get_page(request.GET.get("page"))
    return {"page": page, "search": search, "query": search.query()}


@console_view(Role.PROGRAMME_MANAGER)
def programmes(request):
    return render(request, "console/managers/programmes.html", _programmes_page(request))


@console_view(Role.PROGRAMME_MANAGER)
def impact(request):
    """Each programme with its impact dashboard and the report's tables as CSV (the API's exports)."""
    context = {**_programmes_page(request), "tables": IMPACT_CSV_TABLES}
    return render(request, "console/managers/impact.html", context)


@console_view(Role.PROGRAMME_MANAGER)
def programme_new(request):
    form = forms.ProgrammeForm(request.POST or None, creating=True)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            programme = programme_services.programme_create(created_by=request.user, **form.cleaned_data)
        except PremierError as exc:
            form_error(form, exc)
            status = exc.status_code
        else:
            messages.success(request, f"The programme “{programme.name}” is created. Add its tiers next.")
            return redirect(_programme_url(programme.pk))
    elif form.errors:
        status = 400
    return render(request, "console/managers/programme_form.html", {"form": form, "programme": None}, status=status)


@programme_view
def programme_edit(request, programme):
    form = forms.ProgrammeForm(request.POST or None, initial=forms.ProgrammeForm.initial_from(programme))
    status = 200
    if request.method == "POST" and form.is_valid():
        # Only what the person changed: the service refuses changes to frozen fields once customers are in.
        changes = {name: form.cleaned_data[name] for name in form.changed_data}
        try:
            programme_services.programme_update(programme=programme, **changes)
        except PremierError as exc:
            form_error(form, exc)
            status = exc.status_code
        else:
            messages.success(request, "The programme is saved.")
            return redirect(_programme_url(programme.pk))
    elif form.errors:
        status = 400
    context = {"form": form, "programme": programme}
    return render(request, "console/managers/programme_form.html", context, status=status)


@programme_view
def programme_detail(request, programme):
    enrolments = Enrolment.objects.filter(programme=programme).select_related("segment_run__segment").order_by("-id")
    page = Paginator(enrolments, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "programme": programme,
        "tiers": _tiers(programme),
        "page": page,
        "query": "",
        "groups": programme_group_counts(programme=programme),
        "tables": IMPACT_CSV_TABLES,
    }
    return render(request, "console/managers/programme_detail.html", context)


def _tier_form_page(request, programme, tier):
    initial = forms.TierForm.initial_from(tier) if tier else {"rank": len(_tiers(programme)) + 1}
    form = forms.TierForm(request.POST or None, initial=initial)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            if tier is None:
                tier = programme_services.tier_create(programme=programme, **form.cleaned_data)
            else:
                tier = programme_services.tier_update(tier=tier, **form.cleaned_data)
        except PremierError as exc:
            form_error(form, exc)
            status = exc.status_code
        else:
            messages.success(request, f"The tier “{tier.name}” is saved.")
            return redirect(_programme_url(programme.pk))
    elif form.errors:
        status = 400
    context = {"form": form, "programme": programme, "tier": tier, "tiers": _tiers(programme)}
    return render(request, "console/managers/tier_form.html", context, status=status)


@programme_view
def tier_new(request, programme):
    return _tier_form_page(request, programme, None)


@programme_view
def tier_edit(request, programme, tier_id: int):
    return _tier_form_page(request, programme, tier_get(programme, tier_id))


@programme_view
def enrol(request, programme):
    """Choose a finished segment run; Preview shows who would be enrolled and the power figures; Confirm
    starts the enrolment and goes to its progress page."""
    runs = (
        SegmentRun.objects.filter(status=RunStatus.SUCCEEDED)
        .select_related("segment")
        .order_by("-finished_at", "-id")[:ENROLABLE_RUNS]
    )
    form = forms.EnrolmentForm(request.POST or None, runs=runs)
    preview, status = None, 200
    if request.method == "POST" and form.is_valid():
        run = SegmentRun.objects.get(pk=form.cleaned_data["segment_run"])
        try:
            if "confirm" in request.POST:
                enrolment, created = enrolment_services.enrolment_start(
                    programme=programme, segment_run=run, actor=request.user
                )
                if created:
                    messages.success(request, f"Enrolment #{enrolment.pk} is started; this page follows it.")
                else:
                    messages.info(request, "This run was already enrolled into the programme: here is that enrolment.")
                return redirect(reverse("console:manager-enrolment", args=[programme.pk, enrolment.pk]))
            preview = enrolment_services.enrolment_preview(programme=programme, segment_run=run)
        except PremierError as exc:
            form_error(form, exc, field_map={"segment_run_id": "segment_run"})
            status = exc.status_code
    elif form.errors:
        status = 400
    context = {"programme": programme, "form": form, "preview": preview}
    return render(request, "console/managers/enrol.html", context, status=status)


def _enrolment_or_404(programme, enrolment_id: int) -> Enrolment:
    enrolment = (
        Enrolment.objects.filter(programme=programme, pk=enrolment_id).select_related("segment_run__segment").first()
    )
    if enrolment is None:
        raise NotFound("No such enrolment in this programme.", code="enrolment_not_found")
    return enrolment


@programme_view
@require_POST
def enrolment_retry(request, programme, enrolment_id: int):
    """A failed enrolment is queued again (it writes only the memberships still missing)."""
    enrolment = _enrolment_or_404(programme, enrolment_id)
    try:
        enrolment_services.enrolment_retry(enrolment=enrolment)
    except PremierError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, f"Enrolment #{enrolment.pk} is queued again; this page follows it.")
    return redirect(reverse("console:manager-enrolment", args=[programme.pk, enrolment.pk]))


@programme_view
def enrolment_detail(request, programme, enrolment_id: int):
    enrolment = _enrolment_or_404(programme, enrolment_id)
    busy = enrolment.status in (RunStatus.PENDING, RunStatus.RUNNING)
    return render(
        request,
        "console/managers/enrolment.html",
        {"programme": programme, "enrolment": enrolment, "busy": busy, "result": enrolment.result or {}},
    )


def _membership_filters(request, programme):
    tiers = _tiers(programme)
    form = forms.MembershipFilterForm(request.GET or None, tiers=tiers)
    return form, tiers, memberships_list(programme=programme, **form.selector_kwargs())


@programme_view
def memberships(request, programme):
    form, tiers, qs = _membership_filters(request, programme)
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {"programme": programme, "filters": form, "page": page, "query": query.urlencode()}
    return render(request, "console/managers/memberships.html", context)


@programme_view
def memberships_csv(request, programme):
    """The filtered memberships as CSV (streamed: any size)."""
    _form, _tiers_list, qs = _membership_filters(request, programme)

    header = [
        "membership_id",
        "customer_external_id",
        "customer_name",
        "group",
        "status",
        "tier",
        "shadow_tier",
        "override_tier",
        "override_expires_at",
        "enrolled_at",
        "source_run_id",
    ]
    rows = (
        [
            m.pk,
            m.customer.external_id,
            m.customer.name,
            m.group,
            m.status,
            m.tier.name if m.tier else "",
            m.shadow_tier.name if m.shadow_tier else "",
            m.override_tier.name if m.override_tier else "",
            m.override_expires_at.isoformat() if m.override_expires_at else "",
            m.enrolled_at.isoformat(),
            m.source_run_id or "",
        ]
        for m in qs.iterator(chunk_size=2000)
    )
    return csv_response(header, rows, filename=f"programme-{programme.pk}-memberships.csv")


def _membership_page(request, programme, membership, override_form=None, status=200):
    tiers = _tiers(programme)
    changes = tier_changes_list(programme=programme, membership_id=membership.pk).select_related("actor")
    context = {
        "programme": programme,
        "membership": membership,
        "effective": effective_tier(membership),
        "changes": list(changes[:100]),
        "form": override_form or forms.OverrideForm(tiers=tiers),
    }
    return render(request, "console/managers/membership.html", context, status=status)


@programme_view
def membership_detail(request, programme, membership_id: int):
    return _membership_page(request, programme, membership_get(programme, membership_id))


@programme_view
@require_POST
def membership_override(request, programme, membership_id: int):
    """Set (with a tier, an end and a reason) or clear ('clear' in the form) a tier override."""
    membership = membership_get(programme, membership_id)
    url = reverse("console:manager-membership", args=[programme.pk, membership.pk])
    if "clear" in request.POST:
        tier_policy.membership_override_clear(membership=membership, actor=request.user)
        messages.success(request, "The override is removed: the evaluated tier applies again.")
        return redirect(url)
    form = forms.OverrideForm(request.POST, tiers=_tiers(programme))
    if not form.is_valid():
        return _membership_page(request, programme, membership, form, status=400)
    data = form.cleaned_data
    try:
        tier = tier_get(programme, data["tier_id"])
        tier_policy.membership_override_set(
            membership=membership, tier=tier, expires_at=data["expires_at"], reason=data["reason"], actor=request.user
        )
    except PremierError as exc:
        form_error(form, exc)
        return _membership_page(request, programme, membership, form, status=exc.status_code)
    messages.success(
        request, f"{membership.customer.name} has the tier {tier.name} until {data['expires_at']:%d %b %Y %H:%M} UTC."
    )
    return redirect(url)
