from django.core.management.base import BaseCommand, CommandError

from accounts.models import ApiKey
from accounts.services import api_key_create
from core.errors import PremierError


class Command(BaseCommand):
    help = "Create an API key for an integration and print its secret once (it is stored hashed)."

    def add_arguments(self, parser):
        parser.add_argument("name", help="Who uses the key, e.g. 'CRM nightly feed'.")
        parser.add_argument(
            "--scope",
            action="append",
            dest="scopes",
            choices=ApiKey.Scope.values,
            help="Repeatable. Default: ingest.",
        )

    def handle(self, *args, name: str, scopes: list[str] | None, **options):
        try:
            key, plaintext = api_key_create(name=name, scopes=scopes or [ApiKey.Scope.INGEST])
        except PremierError as exc:
            raise CommandError(exc.detail) from exc
        self.stdout.write(f"Created API key #{key.pk} '{key.name}' with scopes {', '.join(key.scopes)}.")
        self.stdout.write("Secret (shown once, send it as the X-API-Key header):")
        self.stdout.write(plaintext)
