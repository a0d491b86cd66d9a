"""Periodic tasks of this app, merged into CELERY_BEAT_SCHEDULE (schedule in seconds)."""

BEAT: dict = {
    "events-expire-holds": {"task": "events.tasks.expire_holds", "schedule": 60},
    "events-complete-ended-events": {"task": "events.tasks.complete_ended_events", "schedule": 600},
    "events-settle-pending-payments": {"task": "events.tasks.settle_pending_payments", "schedule": 300},
}
