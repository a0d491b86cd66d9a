from django.contrib import admin

from loyalty.programmes.models import Membership, Programme, Tier, TierChange


class ReadOnlyAdmin(admin.ModelAdmin):
    """Append-only facts (written by the services only): listed and viewed, never added, edited or deleted."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class TierInline(admin.TabularInline):
    model = Tier
    extra = 0
    fields = [
        "rank",
        "name",
        "threshold",
        "first_response_sla_hours",
        "resolution_sla_hours",
        "monthly_request_allowance",
        "early_access_hours",
        "guests_per_booking",
    ]


@admin.register(Programme)
class ProgrammeAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "status",
        "holdout_percent",
        "qualifying_metric",
        "evaluation_cadence_days",
        "grace_period_days",
        "last_evaluated_at",
        "created_at",
    ]
    list_filter = ["status"]
    search_fields = ["name"]
    readonly_fields = ["last_evaluated_at", "created_by", "created_at"]
    inlines = [TierInline]

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and obj.memberships.exists():
            # The treatment/control split of enrolled members depends on the seed and holdout share.
            fields += ["seed", "holdout_percent"]
        return fields


@admin.register(Tier)
class TierAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "programme",
        "rank",
        "threshold",
        "first_response_sla_hours",
        "resolution_sla_hours",
        "monthly_request_allowance",
        "early_access_hours",
        "guests_per_booking",
    ]
    list_filter = ["programme"]
    list_select_related = ["programme"]
    search_fields = ["name", "programme__name"]
    ordering = ["programme__name", "rank"]


class TierChangeInline(admin.TabularInline):
    model = TierChange
    extra = 0
    fields = ["at", "reason", "from_tier", "to_tier", "actor", "note"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("from_tier__programme", "to_tier__programme", "actor")


@admin.register(Membership)
class MembershipAdmin(ReadOnlyAdmin):
    """Read-only: the group is decided once at enrolment, tiers move through the tier policy and overrides through
    the manager API, each with its TierChange (shown below the membership)."""

    list_display = [
        "id",
        "customer",
        "programme",
        "group",
        "status",
        "tier",
        "override_tier",
        "override_expires_at",
        "enrolled_at",
    ]
    list_filter = ["programme", "group", "status"]
    list_select_related = ["customer", "programme", "tier__programme", "override_tier__programme"]
    search_fields = ["=customer__external_id", "customer__name", "customer__email"]
    ordering = ["-id"]
    inlines = [TierChangeInline]
    show_full_result_count = False


@admin.register(TierChange)
class TierChangeAdmin(ReadOnlyAdmin):
    list_display = ["id", "membership", "customer", "reason", "from_tier", "to_tier", "at", "actor"]
    list_filter = ["reason", "membership__programme"]
    list_select_related = ["membership__customer", "from_tier__programme", "to_tier__programme", "actor"]
    search_fields = ["=membership__customer__external_id", "membership__customer__name"]
    ordering = ["-at", "-id"]
    show_full_result_count = False

    @admin.display(ordering="membership__customer__name")
    def customer(self, obj: TierChange) -> str:
        return str(obj.membership.customer)
