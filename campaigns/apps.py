from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"

    def ready(self) -> None:
        # ESP tracking webhooks (django-anymail) -> bounces, complaints, unsubscribes.
        from anymail.signals import tracking  # type: ignore[import-untyped]

        from campaigns.signals import tracking_received

        tracking.connect(tracking_received, dispatch_uid="campaigns.tracking_received")
