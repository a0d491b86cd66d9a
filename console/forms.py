"""Console forms: they parse and label input; the services decide."""

from __future__ import annotations

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
