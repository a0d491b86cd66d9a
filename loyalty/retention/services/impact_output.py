"""Outputs of the impact report: SVG charts (matplotlib, Agg backend) and CSV tables."""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING

from core.errors import ValidationFailed

if TYPE_CHECKING:
    from matplotlib.figure import Figure

COLOURS = {"treatment": "#1f6feb", "control": "#8b949e"}


def _figure(**kwargs) -> Figure:
    """A matplotlib Figure (Agg backend). matplotlib loads on the first chart: it takes a second to import."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


CHARTS = ("survival", "uplift-by-tier")
CSV_TABLES = ("comparisons", "srm", "take_up", "survival", "revenue", "cuped")


def _svg(fig: Figure) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    return buffer.getvalue()


def chart_survival_svg(report: dict) -> str:
    """Kaplan-Meier curves per group with their 95% bands, and the numbers at risk underneath."""
    fig = _figure(figsize=(8, 5))
    ax = fig.add_subplot(111)
    survival = report["survival"]
    chart = survival.get("chart") or {"available": True}
    if not chart["available"]:  # no follow-up: a sentence, not curves on a degenerate axis
        ax.set_axis_off()
        ax.text(0.5, 0.5, _wrap(chart["reason"]), ha="center", va="center", fontsize=11)
        return _svg(fig)
    longest = 0
    for curve in survival["curves"]:
        days = [0] + [p["day"] for p in curve["points"]]
        surv = [1.0] + [p["survival"] if p["survival"] is not None else float("nan") for p in curve["points"]]
        low = [1.0] + [p["ci_low"] if p["ci_low"] is not None else float("nan") for p in curve["points"]]
        high = [1.0] + [p["ci_high"] if p["ci_high"] is not None else float("nan") for p in curve["points"]]
        colour = COLOURS.get(curve["group"], "black")
        ax.step(days, surv, where="post", color=colour, label=f"{curve['group']} (n={curve['n']})")
        ax.fill_between(days, low, high, step="post", color=colour, alpha=0.15)
        longest = max(longest, *days)
    ax.set_xlim(0, max(longest, 1))
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("Days since enrolment")
    ax.set_ylabel("Share still a customer")
    title = "Retention: Kaplan-Meier by assigned group"
    if (
        survival.get("logrank")
        and survival["logrank"].get("available", True)
        and survival["logrank"]["p_value"] is not None
    ):
        from loyalty.retention.services.impact import p_format

        title += f" (log-rank {p_format(survival['logrank']['p_value'])}, exploratory)"
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if survival["curves"]:
        ax.legend(loc="lower left")
    else:
        ax.text(0.5, 0.5, "No member enrolled by the report date.", ha="center", va="center")
    if survival["at_risk"]:
        rows = [f"day {r['day']}: T {r['treatment']} / C {r['control']}" for r in survival["at_risk"]]
        fig.text(0.01, -0.04, "At risk  " + "   ".join(rows), fontsize=7)
    return _svg(fig)


def _wrap(text: str, width: int = 70) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


def uplift_chart_months(report: dict) -> int | None:
    """The longest horizon whose overall uplift is available (None if none is)."""
    available = [c["months"] for c in report["retention"] if c.get("available", c["uplift"] is not None)]
    return max(available) if available else None


def chart_uplift_by_tier_svg(report: dict, *, months: int | None = None) -> str:
    """Retention uplift (points) per tier at one horizon with 95% CI error bars; only comparisons with enough
    follow-up and events (the others have no uplift). Default horizon: the longest available one."""
    horizons = report["horizons"]
    months = months if months is not None else (uplift_chart_months(report) or horizons[-1])
    if months not in horizons:
        raise ValidationFailed(f"Horizon {months} is not in this report.", fields={"months": [f"One of {horizons}."]})
    index = horizons.index(months)
    names, values, lows, highs = [], [], [], []
    for tier in [{"tier_name": "All members", "horizons": report["retention"]}, *report["by_tier"]]:
        c = tier["horizons"][index]
        if c["uplift"] is None:
            continue
        names.append(f"{tier['tier_name']}\n(n={c['treatment']['n'] + c['control']['n']})")
        values.append(c["uplift"] * 100)
        lows.append((c["uplift"] - c["ci_low"]) * 100)
        highs.append((c["ci_high"] - c["uplift"]) * 100)
    fig = _figure(figsize=(8, 4.5))
    ax = fig.add_subplot(111)
    if names:
        ax.bar(names, values, yerr=[lows, highs], capsize=6, color=COLOURS["treatment"], alpha=0.8)
    else:
        ax.text(
            0.5,
            0.5,
            _wrap(f"No uplift at {months} months has enough follow-up and churn events yet (see the report)."),
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_ylabel("Retention uplift, points (treatment - control)")
    ax.set_title(f"Uplift at {months} months by tier (shadow tier for control), 95% CI")
    ax.grid(axis="y", alpha=0.3)
    return _svg(fig)


def chart_svg(report: dict, *, chart: str, months: int | None = None) -> str:
    if chart == "survival":
        return chart_survival_svg(report)
    return chart_uplift_by_tier_svg(report, months=months)


def _comparison_row(scope: str, key: str, c: dict) -> list:
    return [
        scope,
        key,
        c["months"],
        c["treatment"]["n"],
        c["treatment"]["retained"],
        c["treatment"]["rate"],
        c["control"]["n"],
        c["control"]["retained"],
        c["control"]["rate"],
        c["uplift"],
        c["ci_low"],
        c["ci_high"],
        c["p_value"],
        c["significant"],
        c["relative_churn_reduction"],
        c.get("available", True),
        c.get("reason"),
        c.get("role"),
        c.get("p_adjusted"),
        c.get("srm_warning", False),
    ]


def report_table(report: dict, table: str) -> tuple[list[str], list[list]]:
    if table == "comparisons":
        header = [
            "scope",
            "key",
            "months",
            "treatment_n",
            "treatment_retained",
            "treatment_rate",
            "control_n",
            "control_retained",
            "control_rate",
            "uplift",
            "ci_low",
            "ci_high",
            "p_value",
            "significant",
            "relative_churn_reduction",
            "available",
            "reason",
            "role",
            "p_adjusted",
            "srm_warning",
        ]
        rows = [_comparison_row("overall", "all", c) for c in report["retention"]]
        rows += [_comparison_row("tier", t["tier_name"], c) for t in report["by_tier"] for c in t["horizons"]]
        rows += [_comparison_row("cohort", k["cohort"], c) for k in report["by_cohort"] for c in k["horizons"]]
        rows += [
            _comparison_row("engagement_band", b["band"], c)
            for b in report["engagement"]["bands"]
            for c in b["horizons"]
        ]
        rows += [_comparison_row("age_band", a["age_band"], c) for a in report.get("by_age", []) for c in a["horizons"]]
        rows += [_comparison_row("region", r["region"], c) for r in report.get("by_region", []) for c in r["horizons"]]
        return header, rows
    if table == "srm":
        header = ["label", "treatment", "control", "expected_control", "chi2", "p_value", "mismatch"]
        items = [report["srm"]["overall"], *report["srm"]["by_tier"]]
        for key in ("by_cohort", "by_age", "by_region"):
            items += [s["srm"] for s in report.get(key, []) if s.get("srm")]
        items += [s["srm"] for s in report["engagement"]["bands"] if s.get("srm")]
        return header, [[s[h] for h in header] for s in items]
    if table == "take_up":
        header = [
            "months",
            "take_up",
            "itt_uplift",
            "cace",
            "cace_ci_low",
            "cace_ci_high",
            "naive_users_rate",
            "naive_non_users_rate",
            "naive_difference",
        ]
        return header, [[r[h] for h in header] for r in report["take_up"]["by_horizon"]]
    if table == "survival":
        header = ["group", "day", "at_risk", "events", "censored", "survival", "ci_low", "ci_high"]
        return header, [
            [c["group"], *[p[h] for h in header[1:]]] for c in report["survival"]["curves"] for p in c["points"]
        ]
    if table == "revenue":
        header = ["month", "treatment_per_customer", "treatment_n", "control_per_customer", "control_n"]
        return header, [[r[h] for h in header] for r in report["revenue"]["over_time"]]
    if table == "cuped":
        header = [
            "months",
            "treatment_n",
            "control_n",
            "theta",
            "raw_difference",
            "adjusted_difference",
            "adjusted_ci_low",
            "adjusted_ci_high",
            "adjusted_p_value",
            "variance_reduction",
            "available",
        ]
        rows = []
        for r in report["revenue"]["cuped"]:
            raw, adj = r.get("raw") or {}, r.get("adjusted") or {}
            rows.append(
                [
                    r["months"],
                    r["treatment_n"],
                    r["control_n"],
                    r.get("theta"),
                    raw.get("difference"),
                    adj.get("difference"),
                    adj.get("ci_low"),
                    adj.get("ci_high"),
                    adj.get("p_value"),
                    r.get("variance_reduction"),
                    r.get("available", True),
                ]
            )
        return header, rows
    raise ValidationFailed(f"Unknown table {table!r}.", fields={"table": [f"One of {', '.join(CSV_TABLES)}."]})


def _cell(value):
    """Empty for null; text that a spreadsheet would run as a formula is quoted."""
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def report_csv(report: dict, table: str) -> str:
    header, rows = report_table(report, table)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(v) for v in row])
    return buffer.getvalue()
