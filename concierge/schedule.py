"""Periodic tasks of this app, merged into CELERY_BEAT_SCHEDULE (schedule in seconds)."""

BEAT: dict = {
    "concierge-sla-breaches": {"task": "concierge.tasks.sla_breaches_check", "schedule": 300},
}
