"""Number formats of the impact dashboard: shares as percentages, differences as signed points."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def pct(value) -> str:
    """0.921 -> '92.1%'; None -> 'n/a'."""
    return "n/a" if value is None or value == "" else f"{float(value) * 100:.1f}%"


@register.filter
def points(value) -> str:
    """0.049 -> '+4.9'; None -> 'n/a'."""
    return "n/a" if value is None or value == "" else f"{float(value) * 100:+.1f}"


@register.filter
def pvalue(value) -> str:
    """0.0000 -> 'p < 0.001'; 0.0386 -> 'p = 0.04'; None -> 'no test'."""
    if value is None or value == "":
        return "no test"
    from loyalty.retention.services.impact import p_format

    return p_format(float(value))
