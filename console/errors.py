"""Show a service's `core.errors` exception to a person: beside the form field it concerns, or at the top."""

from __future__ import annotations

from django.contrib import messages

from core.errors import PremierError


def _as_list(value) -> list[str]:
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return [str(value)]


def form_error(form, exc: PremierError, *, field_map: dict[str, str] | None = None) -> None:
    """Put the exception's `fields` on the form's fields (by name, or through `field_map`), the `detail` on top."""
    field_map = field_map or {}
    placed = False
    for name, value in (exc.fields or {}).items():
        target = field_map.get(name, name)
        if target in form.fields:
            for message in _as_list(value):
                form.add_error(target, message)
            placed = True
    if not placed or exc.detail:
        form.add_error(None, exc.detail)


def flash_error(request, exc: PremierError) -> None:
    messages.error(request, exc.detail)
