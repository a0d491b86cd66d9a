from django.apps import AppConfig


class CommunityConfig(AppConfig):
    name = "community"
    verbose_name = "Community"

    def ready(self):
        from community import tasks  # noqa: F401  (registers the tasks that services enqueue by name)
        from community.services.referrals import customers_ingested_hand_over
        from loyalty.ingestion.services.hand_over import register_customers_ingested

        register_customers_ingested(customers_ingested_hand_over)
        from loyalty.retention.timeline import register_timeline_source

        register_timeline_source(community_timeline)


def community_timeline(customer_id: int) -> list[dict]:
    """The customer's nominations, attribution and ideas on the manager's member timeline."""
    from community.selectors import timeline_entries

    return timeline_entries(customer_id=customer_id)
