"""Periodic tasks of this app, merged into CELERY_BEAT_SCHEDULE (schedule in seconds)."""

BEAT: dict = {}
