"""Periodic tasks of this app, merged into CELERY_BEAT_SCHEDULE (schedule in seconds)."""

BEAT: dict = {
    # Nightly: score everyone with the newest default model, then run every segment on that scoring run.
    "loyalty-scheduled-scoring-and-segments": {
        "task": "loyalty.tasks.scheduled_scoring_and_segments",
        "schedule": 24 * 3600,
    },
}
