"""Authentication classes and role checks shared by every router.

- Users: allauth headless app token (`X-Session-Token`) or the browser session (cookie + CSRF).
- Integrations: `X-API-Key: pk_<prefix>.<secret>` with a scope.
Both put the authenticated principal on `request.auth` (a User or an ApiKey).
"""

from __future__ import annotations

from importlib import import_module

from allauth.headless.contrib.ninja.security import XSessionTokenAuth
from allauth.headless.tokens.strategies.sessions import SessionTokenStrategy as AllauthSessionTokenStrategy
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from ninja.security import APIKeyHeader, SessionAuth

from accounts.models import ApiKey, User
from accounts.services import api_key_authenticate, user_has_role
from core.errors import NotAuthenticated, PermissionDenied


class SessionTokenStrategy(AllauthSessionTokenStrategy):
    """allauth's app-client tokens (session keys), looked up with one query instead of two: allauth's own
    strategy asks `exists()` and then loads the session. Loading a missing or expired session clears its key,
    which answers "no such session" (HEADLESS_TOKEN_STRATEGY points here)."""

    def lookup_session(self, session_token: str):
        session = import_module(settings.SESSION_ENGINE).SessionStore(session_key=session_token)
        session.get(SESSION_KEY)  # loads the session (one query)
        return session if session.session_key else None


class SessionTokenAuth(XSessionTokenAuth):
    """allauth's app-client token, with a valid OpenAPI security scheme (in: header)."""

    openapi_in = "header"
    openapi_name = "X-Session-Token"
    openapi_description = "Session token from the allauth app login (`/_allauth/app/v1/auth/login`)."

    def __call__(self, request):
        user = super().__call__(request)
        if user is not None and user.is_active:
            return user
        return None


class BrowserSessionAuth(SessionAuth):
    """Django session cookie (allauth browser client). Unsafe methods need the CSRF token."""

    openapi_description = "Session cookie from the allauth browser login; send X-CSRFToken on writes."

    def _get_key(self, request):
        # No session cookie: not this client; skip the CSRF check so the caller gets a 401, not a 403.
        if self.param_name not in request.COOKIES:
            return None
        return super()._get_key(request)

    def authenticate(self, request, key):
        user = super().authenticate(request, key)
        return user if user is not None and user.is_active else None


class ApiKeyAuth(APIKeyHeader):
    """Integration key with a required scope. A key without the scope is refused (403)."""

    param_name = "X-API-Key"
    openapi_description = "Integration key `pk_<prefix>.<secret>` (see `manage.py create_api_key`)."

    def __init__(self, scope: str):
        self.scope = scope
        super().__init__()

    def authenticate(self, request, key):
        api_key = api_key_authenticate(key)
        if api_key is None:
            return None
        if self.scope not in api_key.scopes:
            raise PermissionDenied(f"This API key lacks the '{self.scope}' scope.", code="api_key_scope_missing")
        return api_key


session_token_auth = SessionTokenAuth()
browser_session_auth = BrowserSessionAuth()
user_auth = [session_token_auth, browser_session_auth]
ingest_auth = ApiKeyAuth(scope=ApiKey.Scope.INGEST)


def request_user(request) -> User:
    """The authenticated user of a user-authenticated operation."""
    user = getattr(request, "auth", None)
    if not isinstance(user, User):
        raise NotAuthenticated()
    return user


def require_role(request, *roles: str) -> User:
    """The request's user if it has one of `roles`, else 403 (nothing else happens)."""
    user = request_user(request)
    if not user_has_role(user, *roles):
        raise PermissionDenied(
            f"This operation needs the role {' or '.join(roles)}.",
            code="role_required",
            fields={"roles": list(roles)},
        )
    return user
