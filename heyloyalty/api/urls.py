"""Routes of the Heyloyalty-compatible API. Every trailing slash is optional and no
route ever redirects (heyloyalty-api.md §1); unknown paths answer JSON 404."""

from django.urls import re_path

from campaigns import api as campaigns_api
from campaigns import stats_api
from heyloyalty.api.errors import not_found
from members import api as members_api
from members import api_segments, api_webhooks

LIST = r"(?P<list_id>\d+)"
CAMPAIGN = r"(?P<campaign_id>\d+)"

urlpatterns = [
    re_path(r"^loyalty/v1/lists/?$", members_api.ListsView.as_view()),
    # Before lists/<id>: fixed words win over ids.
    re_path(r"^loyalty/v1/lists/countries/?$", members_api.CountriesView.as_view()),
    re_path(rf"^loyalty/v1/lists/{LIST}/?$", members_api.ListDetailView.as_view()),
    re_path(rf"^loyalty/v1/lists/{LIST}/members/?$", members_api.MembersView.as_view()),
    re_path(rf"^loyalty/v1/lists/{LIST}/members/upsert/?$", members_api.MemberUpsertView.as_view()),
    # Before members/<guid>, like upsert (heyloyalty-api.md §10.1).
    re_path(
        rf"^loyalty/v1/lists/{LIST}/members/bulk/(?P<action>copy|move)/?$",
        members_api.MembersBulkView.as_view(),
    ),
    re_path(rf"^loyalty/v1/lists/{LIST}/import/?$", members_api.ImportView.as_view()),
    re_path(rf"^loyalty/v1/lists/{LIST}/statistics/?$", stats_api.ListStatisticsView.as_view()),
    re_path(
        rf"^loyalty/v1/lists/{LIST}/imports/(?P<import_id>\d+)/?$",
        members_api.ImportDetailView.as_view(),
    ),
    re_path(
        rf"^loyalty/v1/lists/{LIST}/imports/(?P<import_id>\d+)/report/?$",
        members_api.ImportReportView.as_view(),
    ),
    re_path(rf"^loyalty/v1/lists/{LIST}/segments/?$", api_segments.SegmentsView.as_view()),
    re_path(
        rf"^loyalty/v1/lists/{LIST}/segments/(?P<segment_id>\d+)/?$",
        api_segments.SegmentDetailView.as_view(),
    ),
    # [php] 1.5.2 sends PUT lists/{id}/webhooks/ without the id: that answers JSON 405.
    re_path(rf"^loyalty/v1/lists/{LIST}/webhooks/?$", api_webhooks.WebhooksView.as_view()),
    re_path(
        rf"^loyalty/v1/lists/{LIST}/webhooks/(?P<webhook_id>\d+)/?$",
        api_webhooks.WebhookDetailView.as_view(),
    ),
    re_path(
        rf"^loyalty/v1/lists/{LIST}/webhooks/(?P<webhook_id>\d+)/deliveries/?$",
        api_webhooks.WebhookDeliveriesView.as_view(),
    ),
    re_path(
        rf"^loyalty/v1/lists/{LIST}/webhooks/(?P<webhook_id>\d+)/deliveries/"
        r"(?P<delivery_id>\d+)/replay/?$",
        api_webhooks.WebhookReplayView.as_view(),
    ),
    re_path(
        rf"^loyalty/v1/lists/{LIST}/members/(?P<member_id>[^/]+)/?$",
        members_api.MemberDetailView.as_view(),
    ),
    re_path(r"^loyalty/v2/lists/members/byfield/?$", members_api.MembersByFieldV2View.as_view()),
    re_path(rf"^loyalty/v2/lists/{LIST}/?$", members_api.ListPatchV2View.as_view()),
    re_path(r"^loyalty/v1/campaigns/?$", campaigns_api.CampaignsView.as_view()),
    re_path(rf"^loyalty/v1/campaigns/{CAMPAIGN}/?$", campaigns_api.CampaignDetailView.as_view()),
    re_path(rf"^loyalty/v1/campaigns/{CAMPAIGN}/send/?$", campaigns_api.CampaignSendView.as_view()),
    re_path(
        rf"^loyalty/v1/campaigns/{CAMPAIGN}/pause/?$", campaigns_api.CampaignPauseView.as_view()
    ),
    re_path(
        rf"^loyalty/v1/campaigns/{CAMPAIGN}/resume/?$", campaigns_api.CampaignResumeView.as_view()
    ),
    re_path(
        rf"^loyalty/v1/campaigns/{CAMPAIGN}/cancel/?$", campaigns_api.CampaignCancelView.as_view()
    ),
    re_path(
        rf"^loyalty/v1/campaigns/{CAMPAIGN}/deliveries/?$",
        campaigns_api.CampaignDeliveriesView.as_view(),
    ),
    re_path(rf"^loyalty/v1/campaigns/{CAMPAIGN}/test/?$", campaigns_api.CampaignTestView.as_view()),
    re_path(
        rf"^loyalty/v1/campaigns/{CAMPAIGN}/statistics/?$",
        stats_api.CampaignStatisticsView.as_view(),
    ),
    re_path(
        rf"^loyalty/v1/campaigns/{CAMPAIGN}/preview/?$",
        campaigns_api.CampaignPreviewView.as_view(),
    ),
    re_path(r"^(loyalty|reseller|tools)(/.*)?$", not_found),
]
