from django.urls import path

from campaigns import autoresponder_views as autoresponders
from campaigns import views

app_name = "campaigns"

CAMPAIGN = "campaigns/<int:campaign_id>"
AUTORESPONDER = "autoresponders/<int:autoresponder_id>"
STEP = f"{AUTORESPONDER}/mails/<int:step_id>"

urlpatterns = [
    path("campaigns/", views.campaigns, name="list"),
    path("campaigns/new/", views.campaign_create, name="create"),
    path("campaigns/preview/", views.campaign_preview, name="preview"),
    path(f"{CAMPAIGN}/", views.campaign_detail, name="detail"),
    path(f"{CAMPAIGN}/edit/", views.campaign_edit, name="edit"),
    path(f"{CAMPAIGN}/test/", views.campaign_test, name="test"),
    path(f"{CAMPAIGN}/send/", views.campaign_send, name="send"),
    path(f"{CAMPAIGN}/status/", views.campaign_status, name="status"),
    path(f"{CAMPAIGN}/pause/", views.campaign_pause, name="pause"),
    path(f"{CAMPAIGN}/resume/", views.campaign_resume, name="resume"),
    path(f"{CAMPAIGN}/cancel/", views.campaign_cancel, name="cancel"),
    path(f"{CAMPAIGN}/unschedule/", views.campaign_unschedule, name="unschedule"),
    path(f"{CAMPAIGN}/resend/", views.campaign_resend, name="resend"),
    path(f"{CAMPAIGN}/duplicate/", views.campaign_duplicate, name="duplicate"),
    path(f"{CAMPAIGN}/delete/", views.campaign_delete, name="delete"),
    path("autoresponders/", autoresponders.autoresponders, name="autoresponders"),
    path(
        "autoresponders/new/",
        autoresponders.autoresponder_create,
        name="autoresponder_create",
    ),
    path(f"{AUTORESPONDER}/", autoresponders.autoresponder_detail, name="autoresponder_detail"),
    path(f"{AUTORESPONDER}/edit/", autoresponders.autoresponder_edit, name="autoresponder_edit"),
    path(
        f"{AUTORESPONDER}/activate/",
        autoresponders.autoresponder_activate,
        name="autoresponder_activate",
    ),
    path(
        f"{AUTORESPONDER}/deactivate/",
        autoresponders.autoresponder_deactivate,
        name="autoresponder_deactivate",
    ),
    path(
        f"{AUTORESPONDER}/delete/", autoresponders.autoresponder_delete, name="autoresponder_delete"
    ),
    path(
        f"{AUTORESPONDER}/mails/new/",
        autoresponders.autoresponder_step_create,
        name="autoresponder_step_create",
    ),
    path(f"{STEP}/", autoresponders.autoresponder_step_edit, name="autoresponder_step_edit"),
    path(f"{STEP}/test/", autoresponders.autoresponder_step_test, name="autoresponder_step_test"),
    path(
        f"{STEP}/delete/",
        autoresponders.autoresponder_step_delete,
        name="autoresponder_step_delete",
    ),
]
