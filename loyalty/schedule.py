"""Periodic tasks of this app, merged into CELERY_BEAT_SCHEDULE (schedule in seconds)."""

import os

BEAT: dict = {
    # Runs that never started or whose worker died are requeued (bounded) or failed, with the reason (core.runs).
    "loyalty-reconcile-runs": {
        "task": "loyalty.tasks.reconcile_runs",
        "schedule": int(os.environ.get("RUN_RECONCILE_INTERVAL", "60")),
    },
    # Programmes whose evaluation is due (cadence per programme) are re-evaluated; idempotent within a day.
    "loyalty-evaluate-due-programmes": {"task": "loyalty.tasks.evaluate_due_programmes", "schedule": 3600},
    # Safety net for member emails whose after-commit task did not run (e.g. broker down).
    "loyalty-send-member-notifications": {"task": "loyalty.tasks.send_member_notifications", "schedule": 300},
    # Nightly: score everyone with the newest default model, then run every segment on that scoring run.
    "loyalty-scheduled-scoring-and-segments": {
        "task": "loyalty.tasks.scheduled_scoring_and_segments",
        "schedule": 24 * 3600,
    },
    # Daily: scoring runs older than SCORING_RUN_RETENTION_DAYS go, with their metrics and segment runs,
    # unless an enrolment or a membership's baseline uses them.
    "loyalty-prune-scoring-runs": {"task": "loyalty.tasks.prune_scoring_runs", "schedule": 24 * 3600},
}
