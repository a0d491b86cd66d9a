from django.contrib import admin

from core.models import OutboxMessage


@admin.register(OutboxMessage)
class OutboxMessageAdmin(admin.ModelAdmin):
    """The task outbox, read-only: what is waiting for the broker and why (last error)."""

    list_display = ("id", "task_name", "args", "created_at", "published_at", "attempts", "last_attempt_at")
    list_filter = (("published_at", admin.EmptyFieldListFilter), "task_name")
    search_fields = ("task_name", "last_error")
    readonly_fields = [f.name for f in OutboxMessage._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
