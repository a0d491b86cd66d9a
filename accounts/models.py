from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.db import models
from django.db.models import Q


class Role(models.TextChoices):
    """Roles are Django groups of these names (created by a data migration)."""

    MEMBER = "member", "Member"
    CONCIERGE_AGENT = "concierge_agent", "Concierge agent"
    PROGRAMME_MANAGER = "programme_manager", "Programme manager"
    PARTNER_STAFF = "partner_staff", "Partner staff"


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra):
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra):
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra):
        extra.update(is_staff=True, is_superuser=True)
        return self._create_user(email, password, **extra)


class User(AbstractUser):
    """A person who logs in with an email address."""

    username = None
    email = models.EmailField("email address", unique=True)

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    objects = UserManager()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.email


class ApiKey(models.Model):
    """A key for an integration (CRM, billing feed). Shown once as `pk_<prefix>.<secret>`; only a SHA-256
    of the secret is stored (the secret is 256 random bits, so a fast hash is safe and cheap per request)."""

    class Scope(models.TextChoices):
        INGEST = "ingest", "Ingest customers, revenue, interactions and outcomes"

    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    secret_hash = models.CharField(max_length=64)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.CheckConstraint(condition=~Q(name=""), name="apikey_name_not_empty")]

    def __str__(self) -> str:
        return f"{self.name} (pk_{self.prefix})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
