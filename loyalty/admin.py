"""Admin registrations, one module per domain (imported here so Django's autodiscovery finds them)."""

from loyalty.segmentation import admin as segmentation  # noqa: F401
