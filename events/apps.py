from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "events"
    verbose_name = "Events"

    def ready(self):
        from events import tasks  # noqa: F401  (registers the tasks that services enqueue by name)
        from loyalty.retention.timeline import register_timeline_source

        register_timeline_source(events_timeline)


def events_timeline(customer_id: int) -> list[dict]:
    """The customer's event bookings on the manager's member timeline."""
    from events.selectors import timeline_entries

    return timeline_entries(customer_id=customer_id)
