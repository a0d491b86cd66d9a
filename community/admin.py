"""Admin for managers: browse campaigns, nominees, referrals, rounds, ideas and polls with filters and search.

Read-only: changes go through the API's services (budgets under concurrency, status emails, moderation)."""

from django.contrib import admin

from community.models import Campaign, Comment, Idea, IdeaStatusChange, Nominee, Poll, Referral, Round


class ReadOnlyAdminMixin:
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Campaign)
class CampaignAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "name", "programme", "starts_at", "ends_at", "holdout_percent", "max_ambassadors")
    list_filter = ("programme", "open_to_members")
    search_fields = ("name",)


@admin.register(Nominee)
class NomineeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "campaign", "customer", "group", "rank", "received", "received_at")
    list_filter = ("campaign", "group")
    search_fields = ("customer__external_id", "customer__name")
    list_select_related = ("campaign", "customer")


@admin.register(Referral)
class ReferralAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "campaign", "referrer", "referred", "generation", "source", "attributed_at", "converted_at")
    list_filter = ("campaign", "generation", "source")
    search_fields = ("referred__external_id", "referrer__external_id")
    list_select_related = ("campaign", "referrer", "referred")


@admin.register(Round)
class RoundAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "title", "starts_at", "ends_at", "budget", "funded_total", "currency")
    search_fields = ("title",)


class StatusChangeInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = IdeaStatusChange
    fields = ("at", "actor", "from_status", "to_status", "note")
    readonly_fields = fields
    extra = 0


@admin.register(Idea)
class IdeaAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "title", "round", "author", "status", "vote_count", "funded_amount", "hidden")
    list_filter = ("status", "hidden", "category", "round")
    search_fields = ("title", "author__name")
    list_select_related = ("round", "author")
    inlines = [StatusChangeInline]


@admin.register(Poll)
class PollAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "kind", "title", "closes_at", "hidden")
    list_filter = ("kind", "hidden")
    search_fields = ("title",)


@admin.register(Comment)
class CommentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "author", "idea", "poll", "hidden", "created_at")
    list_filter = ("hidden",)
    search_fields = ("body", "author__name")
    list_select_related = ("author", "idea", "poll")
