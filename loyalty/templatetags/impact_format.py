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
