"""Admin for managers and agents: search and filter requests, read the conversation and the audit.

Everything here is read-only: changes go through the API's services so that each one writes its audit row,
and the audit (RequestEvent) can be neither added, changed nor deleted from the admin."""

from django.contrib import admin

from concierge.models import ConciergeRequest, RequestEvent, RequestMessage


class ReadOnlyAdminMixin:
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class MessageInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = RequestMessage
    fields = ("created_at", "author", "author_kind", "internal", "body")
    readonly_fields = fields
    extra = 0


class EventInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = RequestEvent
    fields = ("at", "actor", "action", "field", "old_value", "new_value", "note")
    readonly_fields = fields
    extra = 0


@admin.register(ConciergeRequest)
class ConciergeRequestAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "subject",
        "category",
        "status",
        "priority",
        "tier",
        "assignee",
        "due_at",
        "first_response_breached",
        "resolution_breached",
        "created_at",
    )
    list_filter = ("status", "category", "visibility", "first_response_breached", "resolution_breached", "tier")
    search_fields = ("=id", "subject", "membership__customer__name", "membership__customer__external_id")
    list_select_related = ("tier__programme", "assignee")
    date_hierarchy = "created_at"
    inlines = [MessageInline, EventInline]


@admin.register(RequestEvent)
class RequestEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("at", "request", "actor", "action", "field", "old_value", "new_value")
    list_filter = ("action",)
    search_fields = ("=request__id",)
    list_select_related = ("request", "actor")
