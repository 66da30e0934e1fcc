from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from django.views.i18n import JavaScriptCatalog
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from accounts import two_factor_views
from heyloyalty.views import healthz
from members import views as members_views
from monitoring import views as monitoring_views

admin.site.site_header = "Heyloyalty admin"
admin.site.site_title = "Heyloyalty admin"
# Staff sign in with a password and a code from their app (accounts/two_factor.py).
admin.site.login = two_factor_views.admin_login  # type: ignore[method-assign,assignment]

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("readyz", monitoring_views.readyz, name="readyz"),
    path("", include("monitoring.urls")),
    path("", include("accounts.two_factor_urls")),
    # One way to change one's own password, through the accounts service, for staff too.
    path(
        "admin/password_change/",
        RedirectView.as_view(pattern_name="accounts:password_change"),
        name="admin-password-change",
    ),
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("jsi18n/", JavaScriptCatalog.as_view(), name="javascript-catalog"),
    path("", include("heyloyalty.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its script as a file: no inline script for the CSP to allow.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("optin/<str:token>/", members_views.optin_confirm, name="optin_confirm"),
    # Recipients: unsubscribe and preferences (/u/<token>); ESP tracking webhooks.
    path("", include("campaigns.public_urls")),
    # Recipients: the open pixel (/o/<token>.gif) and tracked links (/c/<token>).
    path("", include("campaigns.tracking_urls")),
    path("anymail/", include("anymail.urls")),
    path("", include("members.urls")),
    path("", include("campaigns.urls")),
    path("", include("accounts.urls")),
]

# A request that fails because the database or Redis is away answers 503 with the
# incident banner (monitoring/outage.py); any other error the plain 500 page.
handler500 = monitoring_views.server_error
# Unknown paths under the API prefixes answer the API's JSON 404, the rest the page.
handler404 = "heyloyalty.api.errors.page_not_found"
