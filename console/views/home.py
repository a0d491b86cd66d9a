"""The console's front door: the login page (django-allauth's own login form and flow on the browser session,
so its rate limits, signals and checks apply as for the API's browser client), logout, and the home page."""

from __future__ import annotations

from allauth.account import app_settings as allauth_settings
from allauth.account.forms import LoginForm
from allauth.account.utils import has_verified_email
from django.contrib.auth import views as auth_views
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters

from console.access import STAFF_ROLES, console_view, user_areas

UNVERIFIED = (
    "This email address is not verified yet. Open the verification email Premier sent you (or ask an "
    "administrator), then log in again."
)


def _next_url(request) -> str:
    url = request.POST.get("next") or request.GET.get("next") or ""
    safe = url_has_allowed_host_and_scheme(url, allowed_hosts={request.get_host()}, require_https=request.is_secure())
    return url if url and safe else reverse("console:home")


@sensitive_post_parameters("password")
@csrf_protect
@never_cache
def login(request):
    """Email and password through allauth's LoginForm: a failed attempt counts towards allauth's `login_failed`
    rate limit and fires `user_login_failed`; a success runs allauth's login flow (its stages and
    `user_logged_in`). An address that is not verified is refused with a message, as the API's flow would."""
    next_url = _next_url(request)
    if request.user.is_authenticated:
        return redirect(next_url)
    form = LoginForm(data=request.POST or None, request=request)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            mandatory = allauth_settings.EMAIL_VERIFICATION == allauth_settings.EmailVerificationMethod.MANDATORY
            if not mandatory or has_verified_email(form.user):
                return form.login(request, redirect_url=next_url)
            form.add_error(None, UNVERIFIED)
        status = 400
    return render(request, "console/login.html", {"form": form, "next": next_url}, status=status)


class ConsoleLogoutView(auth_views.LogoutView):
    next_page = "console:login"


@console_view(*STAFF_ROLES)
def home(request):
    return render(request, "console/home.html", {"areas": user_areas(request.user)})
