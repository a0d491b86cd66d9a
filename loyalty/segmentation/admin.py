from django.contrib import admin

from loyalty.segmentation.models import ScoringModel, ScoringRun, Segment, SegmentRun


@admin.register(ScoringModel)
class ScoringModelAdmin(admin.ModelAdmin):
    list_display = ["name", "version", "revenue_window_days", "engagement_window_days", "half_life_days", "locked_at"]
    search_fields = ["name"]
    readonly_fields = ["created_at", "locked_at", "state_as_of_day"]


@admin.register(ScoringRun)
class ScoringRunAdmin(admin.ModelAdmin):
    list_display = ["id", "scoring_model", "as_of", "status", "progress", "customers_scored", "finished_at"]
    list_filter = ["status"]
    list_select_related = ["scoring_model"]
    readonly_fields = [f.name for f in ScoringRun._meta.fields]


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    list_display = ["name", "top_n", "top_by", "updated_at"]
    search_fields = ["name"]


@admin.register(SegmentRun)
class SegmentRunAdmin(admin.ModelAdmin):
    list_display = ["id", "segment", "scoring_run", "status", "candidates_count", "member_count", "finished_at"]
    list_filter = ["status"]
    list_select_related = ["segment"]
    readonly_fields = [f.name for f in SegmentRun._meta.fields]
