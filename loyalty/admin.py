"""Admin registrations, one module per domain (imported here so Django's autodiscovery finds them)."""

from loyalty.customers import admin as customers  # noqa: F401
from loyalty.programmes import admin as programmes  # noqa: F401
from loyalty.retention import admin as retention  # noqa: F401
from loyalty.segmentation import admin as segmentation  # noqa: F401
