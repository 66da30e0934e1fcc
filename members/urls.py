from django.urls import path

from members import views

app_name = "members"

urlpatterns = [
    path("lists/", views.lists, name="lists"),
    path("lists/new/", views.list_create, name="list_create"),
    path("lists/<int:list_id>/", views.list_detail, name="list_detail"),
    path("lists/<int:list_id>/fields/", views.list_fields, name="list_fields"),
    path("lists/<int:list_id>/growth/", views.list_growth, name="list_growth"),
    path("lists/<int:list_id>/export/", views.list_export, name="list_export"),
    path("lists/<int:list_id>/import/", views.import_start, name="import_start"),
    path("lists/<int:list_id>/imports/<int:import_id>/", views.import_detail, name="import_detail"),
    path(
        "lists/<int:list_id>/imports/<int:import_id>/status/",
        views.import_status,
        name="import_status",
    ),
    path(
        "lists/<int:list_id>/imports/<int:import_id>/commit/",
        views.import_commit,
        name="import_commit",
    ),
    path(
        "lists/<int:list_id>/imports/<int:import_id>/report/",
        views.import_report,
        name="import_report",
    ),
    path(
        "lists/<int:list_id>/members/<uuid:member_id>/", views.member_detail, name="member_detail"
    ),
    path(
        "lists/<int:list_id>/members/<uuid:member_id>/remove/",
        views.member_remove,
        name="member_remove",
    ),
    path(
        "lists/<int:list_id>/members/<uuid:member_id>/export/",
        views.member_export,
        name="member_export",
    ),
    path("lists/<int:list_id>/segments/", views.segments, name="segments"),
    path("lists/<int:list_id>/segments/new/", views.segment_edit, name="segment_new"),
    path("lists/<int:list_id>/segments/count/", views.segment_count, name="segment_count"),
    path("lists/<int:list_id>/segments/<int:segment_id>/", views.segment_edit, name="segment_edit"),
    path(
        "lists/<int:list_id>/segments/<int:segment_id>/delete/",
        views.segment_delete,
        name="segment_delete",
    ),
    path(
        "lists/<int:list_id>/segments/<int:segment_id>/export/",
        views.segment_export,
        name="segment_export",
    ),
    path("lists/<int:list_id>/webhooks/", views.webhooks_page, name="webhooks"),
    path(
        "lists/<int:list_id>/webhooks/<int:webhook_id>/",
        views.webhook_detail,
        name="webhook_detail",
    ),
    path(
        "lists/<int:list_id>/webhooks/<int:webhook_id>/enable/",
        views.webhook_enable,
        name="webhook_enable",
    ),
    path(
        "lists/<int:list_id>/webhooks/<int:webhook_id>/deliveries/<int:delivery_id>/replay/",
        views.webhook_replay,
        name="webhook_replay",
    ),
]
