from django.contrib import admin

from events.models import Booking, Event, Partner, PartnerStaff, StripeEvent


class PartnerStaffInline(admin.TabularInline):
    model = PartnerStaff
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Partner)
class PartnerAdmin(admin.ModelAdmin):
    list_display = ["name", "contact_email", "created_at"]
    search_fields = ["name", "contact_email"]
    inlines = [PartnerStaffInline]


@admin.register(PartnerStaff)
class PartnerStaffAdmin(admin.ModelAdmin):
    list_display = ["user", "partner", "created_at"]
    list_select_related = ["user", "partner"]
    search_fields = ["user__email", "partner__name"]
    autocomplete_fields = ["user", "partner"]


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["title", "partner", "status", "starts_at", "capacity", "seats_booked", "price", "currency"]
    list_filter = ["status", "partner"]
    list_select_related = ["partner"]
    search_fields = ["title", "venue", "partner__name"]
    date_hierarchy = "starts_at"
    # Seats move only through the booking services (conditional UPDATEs).
    readonly_fields = [
        "seats_booked",
        "created_by",
        "created_at",
        "updated_at",
        "published_at",
        "cancelled_at",
        "completed_at",
    ]


@admin.register(Booking)
class BookingAdmin(admin.ModelAdmin):
    list_display = ["id", "event", "membership", "seats", "status", "payment_status", "amount", "created_at"]
    list_filter = ["status", "payment_status"]
    list_select_related = ["event", "membership"]
    search_fields = ["event__title", "membership__customer__name", "payment_intent_id"]
    # Bookings change through the services (seat accounting, Stripe): the admin shows them read-only.
    readonly_fields = [field.name for field in Booking._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(StripeEvent)
class StripeEventAdmin(admin.ModelAdmin):
    list_display = ["event_id", "type", "outcome", "booking", "received_at"]
    list_filter = ["type", "outcome"]
    search_fields = ["event_id"]
    readonly_fields = ["event_id", "type", "outcome", "booking", "received_at"]

    def has_add_permission(self, request):
        return False
