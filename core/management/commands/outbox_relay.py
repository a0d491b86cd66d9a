from django.core.management.base import BaseCommand

from core.outbox import outbox_pending_count, outbox_relay


class Command(BaseCommand):
    help = "Publish the task outbox's unpublished messages now (what the periodic relay does), oldest first."

    def add_arguments(self, parser):
        parser.add_argument("--min-age", type=float, default=0.0, help="Skip messages younger than this (seconds).")

    def handle(self, *args, **options):
        published = outbox_relay(min_age_seconds=options["min_age"])
        self.stdout.write(f"{published} published, {outbox_pending_count()} still unpublished.")
