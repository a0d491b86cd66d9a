"""Console forms: they parse and label input; the services decide."""

from __future__ import annotations

from urllib.parse import urlencode

from django import forms

from concierge.models import OPEN_STATUSES, Category, RequestStatus

ASSIGNEE_CHOICES = [("", "Anyone"), ("me", "Assigned to me"), ("none", "Unassigned")]
BREACHED_CHOICES = [("", "Any"), ("yes", "Breached"), ("no", "Not breached")]


class QueueFilterForm(forms.Form):
    status = forms.ChoiceField(
        choices=[("", "Every open status"), *RequestStatus.choices], required=False, label="Status"
    )
    category = forms.ChoiceField(choices=[("", "Every category"), *Category.choices], required=False)
    breached = forms.ChoiceField(choices=BREACHED_CHOICES, required=False, label="SLA")
    assignee = forms.ChoiceField(choices=ASSIGNEE_CHOICES, required=False)

    def selector_kwargs(self, user) -> dict:
        data = self.cleaned_data if self.is_valid() else {}
        kwargs = {"status": data.get("status") or None, "category": data.get("category") or None}
        kwargs["breached"] = {"yes": True, "no": False}.get(data.get("breached") or "")
        if data.get("assignee") == "me":
            kwargs["assignee_id"] = user.pk
        elif data.get("assignee") == "none":
            kwargs["unassigned"] = True
        return kwargs


class VersionedForm(forms.Form):
    """Carries the request's `updated_at` as the page showed it: a change since then is a conflict."""

    version = forms.CharField(widget=forms.HiddenInput)


class AssignForm(VersionedForm):
    assignee_id = forms.TypedChoiceField(coerce=int, label="Colleague", required=True)

    def __init__(self, *args, agents=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["assignee_id"].choices = [
            (agent.pk, f"{agent.get_full_name() or agent.email} ({agent.open_assigned} open)") for agent in agents
        ]


class MessageForm(VersionedForm):
    body = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), label="Message")


class NoteForm(VersionedForm):
    body = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), label="Internal note (agents only)")


class TransitionForm(VersionedForm):
    to_status = forms.ChoiceField(label="New status")
    note = forms.CharField(required=False, max_length=255, label="Reason (optional)")

    def __init__(self, *args, allowed=(), **kwargs):
        super().__init__(*args, **kwargs)
        labels = dict(RequestStatus.choices)
        self.fields["to_status"].choices = [(status, labels[status]) for status in allowed]


__all__ = ["OPEN_STATUSES"]


def _dt_widget():
    return forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")


class EventForm(forms.Form):
    """An event's editable fields (times in UTC). The events service validates the rules between them."""

    title = forms.CharField(max_length=200)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), required=False)
    venue = forms.CharField(max_length=200, required=False)
    starts_at = forms.DateTimeField(widget=_dt_widget(), label="Starts (UTC)")
    ends_at = forms.DateTimeField(widget=_dt_widget(), label="Ends (UTC)")
    capacity = forms.IntegerField(min_value=1, max_value=100_000, label="Capacity (seats)")
    min_tier_rank = forms.IntegerField(min_value=1, max_value=100, initial=1, label="Lowest tier rank that may book")
    price = forms.DecimalField(
        min_value=0, max_digits=10, decimal_places=2, initial=0, label="Price per seat (0 = free)"
    )
    currency = forms.CharField(min_length=3, max_length=3, initial="EUR")
    booking_opens_at = forms.DateTimeField(widget=_dt_widget(), label="Booking opens (UTC)")
    booking_closes_at = forms.DateTimeField(
        widget=_dt_widget(), required=False, label="Booking closes (UTC, empty = at the start)"
    )
    full_refund_hours = forms.IntegerField(
        min_value=0, max_value=10_000, initial=48, label="Full refund until (hours before the start)"
    )
    late_refund_percent = forms.IntegerField(min_value=0, max_value=100, initial=0, label="Later refund (%)")

    FIELDS = (
        "title",
        "description",
        "venue",
        "starts_at",
        "ends_at",
        "capacity",
        "min_tier_rank",
        "price",
        "currency",
        "booking_opens_at",
        "booking_closes_at",
        "full_refund_hours",
        "late_refund_percent",
    )

    @classmethod
    def initial_from(cls, event) -> dict:
        return {field: getattr(event, field) for field in cls.FIELDS}


class BookingSearchForm(forms.Form):
    q = forms.CharField(required=False, max_length=100, label="Name or booking code")
    status = forms.ChoiceField(required=False, label="Status")

    def __init__(self, *args, **kwargs):
        from events.models import Booking

        super().__init__(*args, **kwargs)
        self.fields["status"].choices = [("", "Every status"), *Booking.Status.choices]


class SegmentForm(forms.Form):
    """A segment: its rule as JSON (all / any / not over metric and attribute comparisons) and an optional top N."""

    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    rule = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false", "class": "code"}),
        label="Rule (JSON)",
        help_text='For example {"all": [{"field": "engagement_score", "op": "gte", "value": 60}]}',
        initial='{"all": [{"field": "engagement_score", "op": "gte", "value": 60}]}',
    )
    top_n = forms.IntegerField(required=False, min_value=1, label="Keep the top N (optional)")
    top_by = forms.CharField(required=False, max_length=40, label="Top N by (metric)")
    tie_break = forms.CharField(required=False, max_length=40, label="Tie-break (metric)")

    def clean_rule(self):
        import json

        try:
            rule = json.loads(self.cleaned_data["rule"])
        except ValueError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}.") from exc
        if not isinstance(rule, dict):
            raise forms.ValidationError("The rule is a JSON object.")
        return rule


class NameSearchForm(forms.Form):
    """A list's name filter; `narrow` applies it to a queryset and `query` keeps it across pages."""

    q = forms.CharField(required=False, max_length=100, label="Name contains")

    def narrow(self, queryset, field: str = "name"):
        q = (self.cleaned_data.get("q") or "").strip() if self.is_valid() else ""
        return queryset.filter(**{f"{field}__icontains": q}) if q else queryset

    def query(self) -> str:
        q = (self.cleaned_data.get("q") or "").strip() if self.is_valid() else ""
        return urlencode({"q": q}) if q else ""


class CustomerLookupForm(forms.Form):
    """'Why is this customer in?': a customer of a run's member list, or found by their CRM id."""

    external_id = forms.CharField(max_length=64, label="Customer's external id (CRM)")


class ProgrammeForm(forms.Form):
    """A programme's fields. The programmes service validates ranges and what is frozen after enrolment."""

    name = forms.CharField(max_length=100)
    description = forms.CharField(required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 3}))
    status = forms.ChoiceField(choices=[("active", "Active"), ("closed", "Closed")], initial="active")
    holdout_percent = forms.DecimalField(
        max_digits=5, decimal_places=2, initial=10, label="Holdout (% of enrolled customers kept as control)"
    )
    qualifying_metric = forms.ChoiceField(
        label="Tiers are judged on",
        choices=[
            ("revenue_percentile", "Revenue percentile"),
            ("engagement_score", "Engagement score"),
            ("engagement_percentile", "Engagement percentile"),
            ("revenue_minor", "Revenue (minor units)"),
        ],
    )
    evaluation_cadence_days = forms.IntegerField(max_value=3650, initial=30, label="Re-evaluate tiers every (days)")
    grace_period_days = forms.IntegerField(max_value=3650, initial=60, label="Grace before a downgrade (days)")
    expected_retention = forms.FloatField(
        initial=0.89, label="Expected yearly retention without the programme (0 to 1)"
    )
    primary_metric = forms.ChoiceField(
        choices=[("retention", "Retention at the primary horizon (intention to treat)")],
        label="Primary question of the impact report",
    )
    primary_horizon_months = forms.IntegerField(initial=12, label="Primary horizon (months after enrolment)")

    FIELDS = (
        "name",
        "description",
        "status",
        "holdout_percent",
        "qualifying_metric",
        "evaluation_cadence_days",
        "grace_period_days",
        "expected_retention",
        "primary_metric",
        "primary_horizon_months",
    )

    def __init__(self, *args, creating: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if creating:
            del self.fields["status"]

    @classmethod
    def initial_from(cls, programme) -> dict:
        return {field: getattr(programme, field) for field in cls.FIELDS}


class TierForm(forms.Form):
    rank = forms.IntegerField(min_value=1, max_value=1000, label="Rank (higher is better)")
    name = forms.CharField(max_length=64)
    threshold = forms.FloatField(label="Threshold (minimum of the qualifying metric)")
    first_response_sla_hours = forms.IntegerField(
        min_value=0, max_value=10000, initial=24, label="First response SLA (hours)"
    )
    resolution_sla_hours = forms.IntegerField(min_value=0, max_value=10000, initial=72, label="Resolution SLA (hours)")
    monthly_request_allowance = forms.IntegerField(
        min_value=0, max_value=10000, initial=5, label="Concierge requests per month"
    )
    early_access_hours = forms.IntegerField(min_value=0, max_value=10000, initial=0, label="Early event access (hours)")
    guests_per_booking = forms.IntegerField(min_value=0, max_value=100, initial=0, label="Guests per booking")

    @classmethod
    def initial_from(cls, tier) -> dict:
        return {field: getattr(tier, field) for field in cls.base_fields}


def _finished(run) -> str:
    return f", {run.finished_at:%d %b %Y}" if run.finished_at else ""


class EnrolmentForm(forms.Form):
    segment_run = forms.TypedChoiceField(coerce=int, label="Segment run to enrol")

    def __init__(self, *args, runs=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["segment_run"].choices = [
            (run.pk, f"{run.segment.name}, run #{run.pk} ({run.member_count} members{_finished(run)})") for run in runs
        ]


class MembershipFilterForm(forms.Form):
    group = forms.ChoiceField(
        required=False, choices=[("", "Both groups"), ("treatment", "Treatment"), ("control", "Control")]
    )
    status = forms.ChoiceField(
        required=False, choices=[("", "Every status"), ("active", "Active"), ("holdout", "Holdout"), ("ended", "Ended")]
    )
    tier_id = forms.TypedChoiceField(coerce=int, required=False, empty_value=None, label="Tier (or shadow tier)")
    has_override = forms.ChoiceField(
        required=False, choices=[("", "Any"), ("yes", "With an override"), ("no", "Without")], label="Override"
    )
    customer_external_id = forms.CharField(required=False, max_length=64, label="Customer's external id")

    def __init__(self, *args, tiers=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tier_id"].choices = [("", "Every tier"), *((t.pk, t.name) for t in tiers)]

    def selector_kwargs(self) -> dict:
        data = self.cleaned_data if self.is_valid() else {}
        return {
            "group": data.get("group") or None,
            "status": data.get("status") or None,
            "tier_id": data.get("tier_id"),
            "has_override": {"yes": True, "no": False}.get(data.get("has_override") or ""),
            "customer_external_id": (data.get("customer_external_id") or "").strip() or None,
        }


class OverrideForm(forms.Form):
    tier_id = forms.TypedChoiceField(coerce=int, label="Tier to give")
    expires_at = forms.DateTimeField(widget=_dt_widget(), label="Until (UTC)")
    reason = forms.CharField(max_length=255, label="Reason (kept in the tier history)")

    def __init__(self, *args, tiers=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tier_id"].choices = [(t.pk, f"{t.rank}: {t.name}") for t in tiers]
