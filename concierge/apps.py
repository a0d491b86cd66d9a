from django.apps import AppConfig


class ConciergeConfig(AppConfig):
    name = "concierge"
    verbose_name = "Concierge"
