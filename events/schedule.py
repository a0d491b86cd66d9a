"""Periodic tasks of this app, merged into CELERY_BEAT_SCHEDULE (schedule in seconds)."""

import os

# How often unpaid holds past their expiry are released (seconds); short in the embedded end-to-end test.
HOLD_EXPIRY_INTERVAL_SECONDS = int(os.environ.get("HOLD_EXPIRY_INTERVAL_SECONDS", "60"))

BEAT: dict = {
    "events-expire-holds": {"task": "events.tasks.expire_holds", "schedule": HOLD_EXPIRY_INTERVAL_SECONDS},
    "events-complete-ended-events": {"task": "events.tasks.complete_ended_events", "schedule": 600},
    "events-settle-pending-payments": {"task": "events.tasks.settle_pending_payments", "schedule": 300},
}
