"""Programme managers: segments (rule editor with a preview before saving, runs with progress) and programmes
(with their impact dashboard). Reads and writes through the segmentation services and selectors."""

from __future__ import annotations

import json

from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.models import Role
from console import forms
from console.access import console_view
from console.errors import form_error
from core.csv_stream import csv_response
from core.errors import PremierError
from loyalty.segmentation import selectors
from loyalty.segmentation.models import RunStatus, Segment
from loyalty.segmentation.services import segments as segment_services

PAGE_SIZE = 25
manager_only = console_view(Role.PROGRAMME_MANAGER)
RULE_FIELDS = {"top_n": "top_n", "top_by": "top_by", "tie_break": "tie_break", "name": "name"}


def _rule_field_map(exc: PremierError) -> dict[str, str]:
    """`rule.all.0.field` and friends belong to the rule box."""
    return {name: "rule" for name in exc.fields if name.startswith("rule")} | RULE_FIELDS


@manager_only
def segments(request):
    search = forms.NameSearchForm(request.GET or None)
    page = Paginator(search.narrow(selectors.segment_list()), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "console/managers/segments.html", {"page": page, "search": search, "query": search.query()})


@manager_only
def segment_new(request):
    form = forms.SegmentForm(request.POST or None)
    preview = None
    status = 200
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        args = {"rule": data["rule"], "top_n": data["top_n"], "top_by": data["top_by"], "tie_break": data["tie_break"]}
        try:
            if "save" in request.POST:
                segment = segment_services.segment_create(
                    name=data["name"], description=data["description"], created_by=request.user, **args
                )
                messages.success(request, f"The segment “{segment.name}” is saved.")
                return redirect(reverse("console:manager-segment", args=[segment.pk]))
            preview = segment_services.segment_preview(scoring_run=None, **args)
        except PremierError as exc:
            form_error(form, exc, field_map=_rule_field_map(exc))
            status = exc.status_code
    elif form.errors:
        status = 400
    return render(request, "console/managers/segment_form.html", {"form": form, "preview": preview}, status=status)


@manager_only
def segment_detail(request, segment_id: int):
    segment = get_object_or_404(Segment, pk=segment_id)
    runs = Paginator(selectors.segment_run_list(segment=segment).select_related("scoring_run"), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    busy = any(run.status in (RunStatus.PENDING, RunStatus.RUNNING) for run in runs)
    context = {
        "segment": segment,
        "rule_json": json.dumps(segment.rule, indent=2),
        "page": runs,
        "query": "",
        "busy": busy,
    }
    return render(request, "console/managers/segment_detail.html", context)


@manager_only
@require_POST
def segment_run(request, segment_id: int):
    segment = get_object_or_404(Segment, pk=segment_id)
    try:
        run = segment_services.segment_run_create(segment=segment, created_by=request.user)
    except PremierError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, f"Run #{run.pk} is started; this page follows its progress.")
    return redirect(reverse("console:manager-segment", args=[segment.pk]))


@manager_only
def segment_run_detail(request, run_id: int):
    """A run's members (paginated) and, against the segment's previous finished run, who entered and left."""
    from loyalty.customers.models import Customer
    from loyalty.segmentation.models import SegmentRun

    run = get_object_or_404(SegmentRun.objects.select_related("segment"), pk=run_id)
    members = Paginator(selectors.segment_member_list(run=run), PAGE_SIZE).get_page(request.GET.get("page"))
    previous = selectors.segment_run_list(segment=run.segment).filter(status=RunStatus.SUCCEEDED, pk__lt=run.pk).first()
    diff = None
    if previous is not None and run.status == RunStatus.SUCCEEDED:
        diff = segment_services.segment_run_diff(run=run, against=previous)
        names = Customer.objects.in_bulk(diff["entered"] + diff["left"])
        diff["entered_names"] = [names[i].name for i in diff["entered"] if i in names]
        diff["left_names"] = [names[i].name for i in diff["left"] if i in names]
    context = {"run": run, "page": members, "query": "", "previous": previous, "diff": diff}
    return render(request, "console/managers/run_detail.html", context)


@manager_only
def segment_run_csv(request, run_id: int):
    """The run's members as CSV (streamed: any size)."""
    from loyalty.segmentation.models import SegmentRun

    run = get_object_or_404(SegmentRun, pk=run_id)
    rows = (
        [member.rank, member.customer.external_id, member.customer.name, json.dumps(member.values)]
        for member in selectors.segment_member_list(run=run).iterator(chunk_size=2000)
    )
    return csv_response(
        ["rank", "customer_external_id", "customer_name", "values"], rows, filename=f"segment-run-{run.pk}-members.csv"
    )


@manager_only
def segment_run_explain(request, run_id: int):
    """Why is this customer in (or out of) the run: every condition of the rule against the customer's value,
    and for top N the rank or the cutoff. The customer comes from the member list (`customer`) or is looked up
    by their CRM id (`external_id`)."""
    from loyalty.customers.models import Customer
    from loyalty.segmentation.models import SegmentRun

    run = get_object_or_404(SegmentRun.objects.select_related("segment", "scoring_run"), pk=run_id)
    lookup = forms.CustomerLookupForm(request.GET if "external_id" in request.GET else None)
    customer, explain, error, status = None, None, None, 200
    customer_id = request.GET.get("customer", "")
    if lookup.is_bound and lookup.is_valid():
        customer = Customer.objects.filter(external_id=lookup.cleaned_data["external_id"].strip()).first()
        if customer is None:
            lookup.add_error("external_id", "No customer has this external id.")
            status = 404
    elif customer_id.isdigit() and len(customer_id) <= 18:
        customer = Customer.objects.filter(pk=int(customer_id)).first()
        if customer is None:
            status = 404
            error = "No such customer."
    elif lookup.is_bound:
        status = 400
    if customer is not None:
        try:
            explain = segment_services.segment_run_explain(run=run, customer_id=customer.pk)
        except PremierError as exc:
            error, status = exc.detail, exc.status_code
    context = {"run": run, "lookup": lookup, "customer": customer, "explain": explain, "error": error}
    return render(request, "console/managers/run_explain.html", context, status=status)
