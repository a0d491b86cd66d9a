from django.apps import AppConfig


class LoyaltyConfig(AppConfig):
    name = "loyalty"
    verbose_name = "Loyalty"

    def ready(self) -> None:
        # Register each domain's Celery tasks in every process, so that work handed over by name finds them.
        from loyalty.programmes import tasks as programmes_tasks  # noqa: F401
        from loyalty.retention import tasks as retention_tasks  # noqa: F401
        from loyalty.segmentation import tasks as segmentation_tasks  # noqa: F401
