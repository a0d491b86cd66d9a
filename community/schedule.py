"""Periodic community work (loaded into django-celery-beat by `manage.py sync_beat`)."""

BEAT = {
    # Mark converted referrals and recompute every customer's influence for segment rules.
    "community-influence-refresh": {"task": "community.tasks.influence_refresh", "schedule": 6 * 3600},
}
