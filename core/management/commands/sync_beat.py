from django.conf import settings
from django.core.management.base import BaseCommand
from django_celery_beat.models import IntervalSchedule, PeriodicTask


class Command(BaseCommand):
    help = "Load settings.CELERY_BEAT_SCHEDULE (every N seconds) into django-celery-beat's periodic tasks."

    def handle(self, *args, **options):
        for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
            every = int(entry["schedule"])
            interval, _ = IntervalSchedule.objects.get_or_create(every=every, period=IntervalSchedule.SECONDS)
            PeriodicTask.objects.update_or_create(
                name=name, defaults={"task": entry["task"], "interval": interval, "enabled": True}
            )
            self.stdout.write(f"  {name}: {entry['task']} every {every}s")
        self.stdout.write(f"{len(settings.CELERY_BEAT_SCHEDULE)} periodic tasks in django-celery-beat.")
