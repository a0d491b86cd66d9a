from django.apps import AppConfig


class CommunityConfig(AppConfig):
    name = "community"
    verbose_name = "Community"

    def ready(self):
        from community import tasks  # noqa: F401  (registers the tasks that services enqueue by name)
        from community.services.referrals import customers_ingested_hand_over
        from loyalty.ingestion.services.hand_over import register_customers_ingested

        register_customers_ingested(customers_ingested_hand_over)
