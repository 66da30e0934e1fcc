from django.apps import AppConfig


class HeyloyaltyConfig(AppConfig):
    name = "heyloyalty"
