"""The console's front door: the login page (Django's LoginView on the session), logout, and the home page."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.shortcuts import render

from console.access import STAFF_ROLES, console_view, user_areas


class ConsoleLoginView(auth_views.LoginView):
    template_name = "console/login.html"
    redirect_authenticated_user = True


class ConsoleLogoutView(auth_views.LogoutView):
    next_page = "console:login"


@console_view(*STAFF_ROLES)
def home(request):
    return render(request, "console/home.html", {"areas": user_areas(request.user)})
