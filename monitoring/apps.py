from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = _("Monitoring")

    def ready(self) -> None:
        # Every worker and beat process loads the apps: their heartbeats start here.
        from monitoring import heartbeats

        heartbeats.connect()
