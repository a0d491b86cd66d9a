"""Rebuild the interaction and revenue rollups from every raw row (after a bulk load or a repair)."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand

from loyalty.segmentation.services.rollups import rollups_rebuild


class Command(BaseCommand):
    help = "Rebuild InteractionDayRollup and RevenueDayRollup from the raw rows; scoring states become stale."

    def handle(self, *args, **options):
        started = time.perf_counter()
        counts = rollups_rebuild()
        self.stdout.write(f"{counts} in {time.perf_counter() - started:.1f} s")
