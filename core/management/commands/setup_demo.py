from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Prepare a demo: periodic tasks, then demo data (customers, scoring, programme) if the database is empty."

    def add_arguments(self, parser):
        parser.add_argument("--customers", type=int, default=3000)

    def handle(self, *args, customers: int, **options):
        call_command("sync_beat")
        from loyalty.models import Customer

        if Customer.objects.exists():
            self.stdout.write("Demo data already present; leaving it as it is.")
            return
        from django.core.management import get_commands

        if "seed_demo" in get_commands():
            call_command("seed_demo", customers=customers, seed=42)
