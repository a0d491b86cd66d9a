"""Server-rendered pages for programme managers (browser session login)."""

from __future__ import annotations

import base64

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, render

from accounts.models import Role
from accounts.services import user_has_role
from loyalty.programmes.models import Programme
from loyalty.retention.models import ImpactReport
from loyalty.retention.services.impact import impact_report_compute
from loyalty.retention.services.impact_output import chart_survival_svg, chart_uplift_by_tier_svg, uplift_chart_months


def _data_uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


@login_required
def impact_dashboard(request, programme_id: int):
    """The impact report with its charts. Managers only: anonymous users go to the login page, others get 403.
    Uses the latest finished stored report of the programme if there is one, else computes now."""
    if not user_has_role(request.user, Role.PROGRAMME_MANAGER):
        raise PermissionDenied("Programme managers only.")
    programme = get_object_or_404(Programme, pk=programme_id)
    stored = (
        ImpactReport.objects.filter(programme=programme, status=ImpactReport.Status.SUCCEEDED)
        .order_by("-finished_at", "-id")
        .first()
    )
    if stored and not {"minimums", "decision"} <= set(stored.result or {}):
        stored = None  # computed before the report said what it cannot show or claim: compute it again
    report = stored.result if stored and request.GET.get("live") != "1" else impact_report_compute(programme=programme)
    survival_available = (report["survival"].get("chart") or {}).get("available", True)
    months = uplift_chart_months(report)
    context = {
        "programme": programme,
        "report": report,
        "stored": stored if stored and report is stored.result else None,
        # No picture without data: the template says what is missing instead.
        "survival_chart": _data_uri(chart_survival_svg(report)) if survival_available else None,
        "uplift_months": months,
        "uplift_chart": _data_uri(chart_uplift_by_tier_svg(report, months=months)) if months else None,
        "csv_tables": ["comparisons", "srm", "take_up", "survival", "revenue", "cuped"],
    }
    return render(request, "loyalty/impact_dashboard.html", context)
