from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The demo builder used by `make run`: sits above every app and only calls their services."""

    name = "demo"
    verbose_name = "Premier demo"
