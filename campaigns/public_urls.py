"""The recipient's pages, at the root: short links in every message."""

from django.urls import path

from campaigns import public_views

urlpatterns = [
    path("u/<str:token>", public_views.unsubscribe, name="unsubscribe"),
    path(
        "u/<str:token>/preferences",
        public_views.unsubscribe_preferences,
        name="unsubscribe_preferences",
    ),
]
