from django.apps import AppConfig
from django.db.models.signals import post_migrate


def create_cache_tables(using: str = "default", **kwargs) -> None:
    """Create the database cache tables (settings.CACHES) as part of `migrate`, so that `make run`, the tests and
    CI need no extra `createcachetable` step. Idempotent: existing tables are left alone."""
    from django.core.management import call_command

    call_command("createcachetable", database=using, verbosity=0)


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Core"

    def ready(self) -> None:
        from core import tasks  # noqa: F401  (registers the tasks that services enqueue by name)

        post_migrate.connect(create_cache_tables, sender=self, dispatch_uid="core.create_cache_tables")
