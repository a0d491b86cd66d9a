from django.contrib import admin

from loyalty.customers.models import Customer


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    """Customers as the CRM feeds them; corrections go through ingestion, so the CRM fields stay editable only
    for one-off fixes and the timestamps are read-only."""

    list_display = ["external_id", "name", "email", "region", "status", "joined_at", "churned_at", "user"]
    list_filter = ["status", "region"]
    list_select_related = ["user"]
    search_fields = ["=external_id", "name", "email", "=phone"]
    ordering = ["id"]
    raw_id_fields = ["user"]
    readonly_fields = ["created_at", "updated_at"]
    show_full_result_count = False  # a programme has hundreds of thousands of customers
