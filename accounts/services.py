from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from accounts.models import ApiKey, Role, User
from core.errors import ValidationFailed

LAST_USED_RESOLUTION = timedelta(minutes=1)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def user_roles(user) -> list[str]:
    if not getattr(user, "is_authenticated", False):
        return []
    cached = getattr(user, "_premier_roles", None)
    if cached is None:
        valid = set(Role.values)
        cached = sorted(name for name in user.groups.values_list("name", flat=True) if name in valid)
        user._premier_roles = cached
    return cached


def user_has_role(user, *roles: str) -> bool:
    return bool(set(user_roles(user)) & set(roles))


@transaction.atomic
def user_add_role(*, user: User, role: str) -> None:
    if role not in Role.values:
        raise ValidationFailed(f"Unknown role {role!r}.", code="unknown_role", fields={"role": ["Unknown role."]})
    user.groups.add(Group.objects.get_or_create(name=role)[0])
    user.__dict__.pop("_premier_roles", None)


@transaction.atomic
def api_key_create(*, name: str, scopes: list[str], created_by: User | None = None) -> tuple[ApiKey, str]:
    """Create a key and return it with its plaintext, which is never stored and cannot be shown again."""
    unknown = sorted(set(scopes) - set(ApiKey.Scope.values))
    if not name.strip():
        raise ValidationFailed("A name is required.", code="invalid_api_key", fields={"name": ["Required."]})
    if not scopes or unknown:
        raise ValidationFailed(
            f"Scopes must be among {ApiKey.Scope.values}.",
            code="invalid_api_key",
            fields={"scopes": [f"Unknown scope {s!r}." for s in unknown] or ["At least one scope."]},
        )
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    key = ApiKey.objects.create(
        name=name.strip(),
        prefix=prefix,
        secret_hash=_hash(secret),
        scopes=sorted(set(scopes)),
        created_by=created_by,
    )
    return key, f"pk_{prefix}.{secret}"


def api_key_revoke(*, key: ApiKey) -> ApiKey:
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
    return key


def api_key_authenticate(raw: str | None) -> ApiKey | None:
    """The active key matching `raw`, or None. Records the last use (at most once a minute per key)."""
    if not raw or not raw.startswith("pk_") or "." not in raw:
        return None
    prefix, _, secret = raw[3:].partition(".")
    key = ApiKey.objects.filter(prefix=prefix, revoked_at__isnull=True).first()
    if key is None or not hmac.compare_digest(key.secret_hash, _hash(secret)):
        return None
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key
