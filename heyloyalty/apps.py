from django.apps import AppConfig


class HeyloyaltyConfig(AppConfig):
    name = "heyloyalty"

    def ready(self) -> None:
        from heyloyalty.api import schema  # noqa: F401 - registers the OpenAPI auth scheme
