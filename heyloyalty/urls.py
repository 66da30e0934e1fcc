from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from django.views.i18n import JavaScriptCatalog
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from heyloyalty.views import healthz
from members import views as members_views

admin.site.site_header = "Heyloyalty admin"
admin.site.site_title = "Heyloyalty admin"

urlpatterns = [
    path("healthz", healthz, name="healthz"),
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
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
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
