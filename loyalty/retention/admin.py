from django.contrib import admin

from loyalty.programmes.admin import ReadOnlyAdmin
from loyalty.retention.models import RetentionOutcome


@admin.register(RetentionOutcome)
class RetentionOutcomeAdmin(ReadOnlyAdmin):
    """Outcomes are append-only facts: a correction is a new outcome (ingestion or the manager API) that
    supersedes the old one. Nothing is edited or deleted here."""

    list_display = [
        "id",
        "customer",
        "programme",
        "group",
        "outcome",
        "observed_at",
        "source",
        "revenue_change",
        "intends_to_stay",
        "corrects",
        "recorded_at",
    ]
    list_filter = ["outcome", "source", "membership__group", "membership__programme"]
    list_select_related = ["membership__customer", "membership__programme"]
    search_fields = ["=external_id", "=membership__customer__external_id", "membership__customer__name"]
    ordering = ["-observed_at", "-id"]
    show_full_result_count = False

    @admin.display(ordering="membership__customer__name")
    def customer(self, obj: RetentionOutcome) -> str:
        return str(obj.membership.customer)

    @admin.display(ordering="membership__programme__name")
    def programme(self, obj: RetentionOutcome) -> str:
        return obj.membership.programme.name

    @admin.display(description="supersedes")
    def corrects(self, obj: RetentionOutcome) -> int | None:
        return obj.supersedes_id

    @admin.display(ordering="membership__group")
    def group(self, obj: RetentionOutcome) -> str:
        return obj.membership.group
