from django.urls import path

from accounts import views

app_name = "accounts"

# There is deliberately no password-reset URL: a lost password is replaced by the
# customer's account manager, never mailed.
urlpatterns = [
    path("", views.home, name="home"),
    path("signin/", views.SignInView.as_view(), name="login"),
    path("signout/", views.SignOutView.as_view(), name="logout"),
    path("password/", views.PasswordChangeView.as_view(), name="password_change"),
    path("settings/api-keys/", views.api_keys, name="api_keys"),
    path("settings/api-keys/<int:key_id>/revoke/", views.api_key_revoke, name="api_key_revoke"),
    path("settings/access/", views.access, name="access"),
    path("settings/access/log.csv", views.access_export, name="access_export"),
    path(
        "settings/access/requests/<int:request_id>/",
        views.access_request_decide,
        name="access_request_decide",
    ),
    path(
        "settings/access/grants/<int:grant_id>/revoke/",
        views.access_grant_revoke,
        name="access_grant_revoke",
    ),
    # The approve and deny links mailed to the owners (signed; see accounts/consent.py).
    path("access/<str:token>/", views.access_link, name="access_link"),
    # Staff working in a customer's dashboard: the banner's End now button.
    path("acting/end/", views.acting_end, name="acting_end"),
]
