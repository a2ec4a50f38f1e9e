from django.apps import AppConfig


class SkylineConfig(AppConfig):
    """Process-wide wiring every role shares: tracing."""

    name = "skyline"
    verbose_name = "Skyline"

    def ready(self):
        from skyline import tracing

        tracing.configure()
