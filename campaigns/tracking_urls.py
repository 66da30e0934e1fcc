"""The tracking URLs, at the root: short, in every tracked message."""

from django.urls import path

from campaigns import tracking_views

urlpatterns = [
    path("o/<str:token>.gif", tracking_views.open_pixel, name="tracking_open"),
    path("c/<str:token>", tracking_views.click, name="tracking_click"),
]
