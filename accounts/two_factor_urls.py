from django.urls import path

from accounts import two_factor_views as views

app_name = "two_factor"

urlpatterns = [
    path("signin/code/", views.verify, name="verify"),
    path("signin/add-app/", views.setup, name="setup"),
    path("settings/two-factor/", views.settings_page, name="settings"),
]
