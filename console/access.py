"""Who may open which console page: logged-in staff with a role. Anonymous people go to the console login;
a logged-in person without the role gets 403 and nothing happens."""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.shortcuts import render
from django.urls import reverse

from accounts.models import Role
from accounts.services import user_has_role, user_roles
from core.errors import PermissionDenied

# The console's areas, in the order the home page shows them.
AREAS = [
    (Role.CONCIERGE_AGENT, "Concierge queue", "console:agent-queue", "Work the request queue: assign, reply, fulfil."),
    (Role.PARTNER_STAFF, "Partner events", "console:partner-events", "Your events, bookings and check-in."),
    (Role.PROGRAMME_MANAGER, "Segments", "console:manager-segments", "Rules, previews and runs of segments."),
    (
        Role.PROGRAMME_MANAGER,
        "Programmes",
        "console:manager-programmes",
        "Programmes and tiers, enrolment of segment runs, memberships and overrides.",
    ),
    (Role.PROGRAMME_MANAGER, "Impact", "console:manager-impact", "Impact dashboards and their tables as CSV."),
]
STAFF_ROLES = (Role.CONCIERGE_AGENT, Role.PARTNER_STAFF, Role.PROGRAMME_MANAGER)


def user_areas(user) -> list[dict]:
    roles = set(user_roles(user))
    return [
        {"role": role, "title": title, "url": reverse(url_name), "summary": summary}
        for role, title, url_name, summary in AREAS
        if role in roles
    ]


def console_view(*roles: str):
    """Decorator: the view needs a logged-in active user with one of `roles`."""

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not request.user.is_authenticated or not request.user.is_active:
                return redirect_to_login(request.get_full_path(), reverse("console:login"))
            if not user_has_role(request.user, *roles):
                labels = dict(Role.choices)
                error = PermissionDenied(
                    f"This page is for {' or '.join(labels[r].lower() + 's' for r in roles)}; your account has "
                    "no such role.",
                    code="role_required",
                )
                return render(request, "console/error.html", {"error": error}, status=403)
            return view(request, *args, **kwargs)

        return wrapped

    return decorator
