"""Admin registrations, one module per area (imported here so Django's autodiscovery finds them)."""

from loyalty.admin import scoring as scoring  # noqa: F401
