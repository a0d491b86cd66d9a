from django.core.management.base import BaseCommand, CommandError

from accounts.models import ApiKey
from accounts.services import api_key_revoke


class Command(BaseCommand):
    help = "Revoke an API key by id or prefix; requests with it are refused from now on."

    def add_arguments(self, parser):
        parser.add_argument("key", help="Key id or prefix (the part after pk_ and before the dot).")

    def handle(self, *args, key: str, **options):
        found = ApiKey.objects.filter(prefix=key).first() or (
            ApiKey.objects.filter(pk=int(key)).first() if key.isdigit() else None
        )
        if found is None:
            raise CommandError(f"No API key {key!r}.")
        api_key_revoke(key=found)
        self.stdout.write(f"Revoked API key #{found.pk} '{found.name}'.")
