from django.apps import AppConfig


class ConciergeConfig(AppConfig):
    name = "concierge"
    verbose_name = "Concierge"

    def ready(self):
        from concierge import tasks  # noqa: F401  (registers the tasks that services enqueue by name)
        from loyalty.retention.timeline import register_timeline_source

        register_timeline_source(concierge_timeline)


def concierge_timeline(customer_id: int) -> list[dict]:
    """The customer's concierge requests on the manager's member timeline."""
    from concierge.selectors import timeline_entries

    return timeline_entries(customer_id=customer_id)
