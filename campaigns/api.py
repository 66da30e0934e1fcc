"""Campaigns in the API: our additions to Heyloyalty's (DESIGN.md), signed the same way.

Views are thin: parse with the shared extractor (every body encoding, every verb), call a
selector, a service or the pipeline, shape the answer with campaigns.serializers. Every
campaign is found through the calling key's account, so another account's ids answer
404, and so do another account's lists, segments and members given as targets or to
preview as. Refused operations answer 400 ``{"error", "field"}`` naming the field (and
``errors`` with every problem when a send is refused for several).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from campaigns import pipeline, selectors, serializers, services
from campaigns.errors import CampaignError
from campaigns.models import Campaign, CampaignStatus, DeliveryStatus
from campaigns.templating import TemplateError
from heyloyalty.api.base import ApiView
from heyloyalty.api.errors import bad_request, exception_handler
from heyloyalty.api.params import ParamError, Params, to_bool, to_int, to_list

MAX_PERPAGE = 5000
MAX_TEST_EMAILS = 10
CAMPAIGN_ID = OpenApiParameter("campaign_id", int, OpenApiParameter.PATH)
ERRORS = {
    400: serializers.ErrorSerializer,
    404: OpenApiResponse(serializers.NotFoundSerializer, description="Not this account's"),
}


MEDIA_TYPES = ("application/json", "application/x-www-form-urlencoded", "multipart/form-data")


def _body(serializer: Any) -> dict[str, Any]:
    """The request body in each encoding the extractor reads."""
    return dict.fromkeys(MEDIA_TYPES, serializer)


def campaign_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, CampaignError):
        field, message = next(iter(exc.errors.items()), ("", str(exc)))
        response = bad_request(message, field or None)
        if len(exc.errors) > 1:
            response.data["errors"] = exc.errors
        return response
    if isinstance(exc, TemplateError):
        return bad_request(exc.message, exc.part)
    return exception_handler(exc, context)


class CampaignApiView(ApiView):
    def get_exception_handler(self) -> Callable[[Exception, dict[str, Any]], Response | None]:
        return campaign_exception_handler

    def campaign(self, request: Request, campaign_id: str) -> Campaign:
        return selectors.campaign_get(account=self.account(request), campaign_id=campaign_id)


# -- reading parameters ------------------------------------------------------------------

TEXT_PARAMS = services.TEXT_FIELDS


def _text(params: Params, name: str) -> str:
    value = params[name]
    if isinstance(value, dict | list):
        raise ParamError(f"{name} must be text", field=name)
    return "" if value is None else str(value)


def _ids(params: Params, name: str) -> list[int]:
    """``[1, 2]``, ``name[]=1&name[]=2``, ``name[0]=1`` or ``"1,2"``."""
    raw = params.get(name)
    values = raw.split(",") if isinstance(raw, str) else to_list(raw)
    return [to_int(v, field=name) for v in values if str(v).strip()]


def _changes(params: Params) -> dict[str, Any]:
    changes: dict[str, Any] = {name: _text(params, name) for name in TEXT_PARAMS if name in params}
    if "tracking" in params:
        changes["tracking"] = to_bool(params["tracking"], field="tracking")
    for name in services.TARGET_FIELDS:
        if name in params:
            changes[name] = _ids(params, name)
    return changes


def _page(params: Params, default: int = 50) -> tuple[int, int]:
    page = max(1, to_int(params.get("page", 1), field="page"))
    perpage = to_int(params.get("perpage", default), field="perpage")
    if not 1 <= perpage <= MAX_PERPAGE:
        raise ParamError(f"perpage must be between 1 and {MAX_PERPAGE}", field="perpage")
    return page, perpage


def _scheduled_at(params: Params) -> datetime | None:
    raw = params.get("scheduled_at")
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    try:
        return datetime.fromisoformat(str(raw).strip())
    except ValueError:
        raise ParamError(
            "scheduled_at must be an ISO 8601 time, e.g. 2030-05-01T09:00:00+02:00",
            field="scheduled_at",
        ) from None


def campaign_detail(campaign: Campaign) -> dict[str, Any]:
    """A campaign as GET answers it. A draft's recipients are counted live, with the
    problems that stop it from being sent; from the send on, the pipeline's counters."""
    problems = None
    if campaign.status == CampaignStatus.DRAFT:
        count = selectors.campaign_recipients_count(campaign=campaign)
        progress = pipeline.Progress(count, 0, 0, 0, 0)
        problems = services.campaign_problems(campaign=campaign)
    else:
        progress = pipeline.campaign_progress(campaign=campaign)
    return serializers.campaign_json(
        campaign,
        targets=selectors.campaign_targets(campaign=campaign),
        progress=progress,
        statistics=selectors.campaign_statistics(campaign=campaign),
        problems=problems,
    )


# -- views -------------------------------------------------------------------------------


class CampaignsView(CampaignApiView):
    @extend_schema(
        operation_id="campaigns_index",
        summary="The account's campaigns, newest first, paged",
        parameters=[
            OpenApiParameter("page", int),
            OpenApiParameter("perpage", int, description=f"1 to {MAX_PERPAGE}, default 50"),
            OpenApiParameter("status", str, enum=CampaignStatus.values),
        ],
        responses={200: serializers.CampaignListSerializer, 400: serializers.ErrorSerializer},
    )
    def get(self, request: Request) -> Response:
        params = self.params(request)
        page, perpage = _page(params)
        campaigns = selectors.campaigns_for_account(
            account=self.account(request), status=str(params.get("status") or "") or None
        ).select_related("account")
        start = (page - 1) * perpage
        return Response(
            {
                "campaigns": [
                    serializers.campaign_summary(c) for c in campaigns[start : start + perpage]
                ],
                "total": campaigns.count(),
                "page": page,
                "perpage": perpage,
            }
        )

    @extend_schema(
        operation_id="campaigns_create",
        summary="Create a draft campaign",
        description="Saved even when it cannot be sent yet; `problems` names what is missing. "
        "Lists and segments must be the account's own (another's answers 404).",
        request=_body(serializers.CampaignWriteSerializer),
        responses={201: serializers.CampaignSerializer, **ERRORS},
    )
    def post(self, request: Request) -> Response:
        params = self.params(request)
        changes = _changes(params)
        if not changes.get("name", "").strip():
            raise ParamError("name is required", field="name")
        campaign = services.campaign_create(account=self.account(request), **changes)
        return Response(campaign_detail(campaign), status=201)


class CampaignDetailView(CampaignApiView):
    @extend_schema(
        operation_id="campaigns_read",
        summary="A campaign: content, targets, status, progress and statistics",
        parameters=[CAMPAIGN_ID],
        responses={200: serializers.CampaignSerializer, 404: ERRORS[404]},
    )
    def get(self, request: Request, campaign_id: str) -> Response:
        return Response(campaign_detail(self.campaign(request, campaign_id)))

    @extend_schema(
        operation_id="campaigns_update",
        summary="Change a draft",
        description="Only the fields sent change; a target field replaces the targets of "
        "that kind. Refused (400, field `status`) unless the campaign is a draft: "
        "unschedule a scheduled one first.",
        parameters=[CAMPAIGN_ID],
        request=_body(serializers.CampaignWriteSerializer),
        responses={200: serializers.CampaignSerializer, **ERRORS},
    )
    def patch(self, request: Request, campaign_id: str) -> Response:
        campaign = self.campaign(request, campaign_id)
        changes = _changes(self.params(request))
        if changes:
            services.campaign_update(campaign=campaign, **changes)
        return Response(campaign_detail(campaign))


class CampaignSendView(CampaignApiView):
    @extend_schema(
        operation_id="campaigns_send",
        summary="Send a draft now, or schedule it",
        description="Without `scheduled_at` the send starts now (202). Refused with 400 "
        "naming the field when something stops it (see `problems`), for a time in the "
        "past, or when the campaign is not a draft.",
        parameters=[CAMPAIGN_ID],
        request=_body(serializers.SendSerializer),
        responses={202: serializers.CampaignSerializer, **ERRORS},
    )
    def post(self, request: Request, campaign_id: str) -> Response:
        campaign = self.campaign(request, campaign_id)
        at = _scheduled_at(self.params(request))
        if at is not None:
            at = services.account_time(account=campaign.account, moment=at)
        campaign = pipeline.campaign_start(campaign=campaign, at=at)
        return Response(campaign_detail(campaign), status=202)


def _controlled(operation_id: str, summary: str) -> Callable[[Any], Any]:
    return extend_schema(
        operation_id=operation_id,
        summary=summary,
        description="Refused with 400 (field `status`) when the campaign is not in a state "
        "it applies to.",
        parameters=[CAMPAIGN_ID],
        request=None,
        responses={200: serializers.CampaignSerializer, **ERRORS},
    )


class CampaignPauseView(CampaignApiView):
    @_controlled("campaigns_pause", "Pause a send; it stops between messages")
    def post(self, request: Request, campaign_id: str) -> Response:
        campaign = pipeline.campaign_pause(campaign=self.campaign(request, campaign_id))
        return Response(campaign_detail(campaign))


class CampaignResumeView(CampaignApiView):
    @_controlled("campaigns_resume", "Resume a paused send")
    def post(self, request: Request, campaign_id: str) -> Response:
        campaign = pipeline.campaign_resume(campaign=self.campaign(request, campaign_id))
        return Response(campaign_detail(campaign))


class CampaignCancelView(CampaignApiView):
    @_controlled(
        "campaigns_cancel",
        "Cancel a scheduled, sending or paused campaign: who has not been sent it is not",
    )
    def post(self, request: Request, campaign_id: str) -> Response:
        campaign = pipeline.campaign_cancel(campaign=self.campaign(request, campaign_id))
        return Response(campaign_detail(campaign))


class CampaignDeliveriesView(CampaignApiView):
    @extend_schema(
        operation_id="campaigns_deliveries",
        summary="Per-recipient status of a campaign, paged",
        parameters=[
            CAMPAIGN_ID,
            OpenApiParameter("page", int),
            OpenApiParameter("perpage", int, description=f"1 to {MAX_PERPAGE}, default 50"),
            OpenApiParameter("status", str, enum=DeliveryStatus.values),
        ],
        responses={200: serializers.DeliveryListSerializer, **ERRORS},
    )
    def get(self, request: Request, campaign_id: str) -> Response:
        campaign = self.campaign(request, campaign_id)
        params = self.params(request)
        page, perpage = _page(params)
        counts = selectors.delivery_counts(campaign=campaign)
        found = selectors.deliveries_for_campaign(
            campaign=campaign,
            status=str(params.get("status") or "") or None,
            page=page,
            perpage=perpage,
            counts=counts,
        )
        tz = campaign.account.timezone
        return Response(
            {
                "deliveries": [serializers.delivery_json(d, tz) for d in found.items],
                "counts": counts,
                "total": found.total,
                "page": found.page,
                "perpage": found.perpage,
            }
        )


def _emails(params: Params) -> list[str]:
    raw = params.get("emails", params.get("email"))
    values = raw.split(",") if isinstance(raw, str) else to_list(raw)
    emails = [str(v).strip() for v in values if str(v).strip()]
    if not emails:
        raise ParamError("emails is required: the addresses to send the test to", field="emails")
    if len(emails) > MAX_TEST_EMAILS:
        raise ParamError(f"at most {MAX_TEST_EMAILS} addresses", field="emails")
    return emails


class CampaignTestView(CampaignApiView):
    @extend_schema(
        operation_id="campaigns_test",
        summary="Send a test of the campaign to some addresses",
        description="Marked as a test in the subject and not counted anywhere. With "
        "`member_id` the message is rendered as that member (one of the account's).",
        parameters=[CAMPAIGN_ID],
        request=_body(serializers.TestSendSerializer),
        responses={200: OpenApiTypes.OBJECT, **ERRORS},
    )
    def post(self, request: Request, campaign_id: str) -> Response:
        campaign = self.campaign(request, campaign_id)
        params = self.params(request)
        emails = _emails(params)
        member = None
        if params.get("member_id"):
            member = selectors.account_member_get(
                account=campaign.account, member_id=params["member_id"]
            )
        pipeline.campaign_send_test(campaign=campaign, emails=emails, member=member)
        return Response({"sent_to": emails})


class CampaignPreviewView(CampaignApiView):
    @extend_schema(
        operation_id="campaigns_preview",
        summary="The campaign rendered as one member would get it",
        description="Without `member_id`, with the fallbacks. A template problem answers "
        "400 naming the part (subject, preheader, html, text).",
        parameters=[CAMPAIGN_ID, OpenApiParameter("member_id", str)],
        responses={200: serializers.PreviewSerializer, **ERRORS},
    )
    def get(self, request: Request, campaign_id: str) -> Response:
        campaign = self.campaign(request, campaign_id)
        member_id = self.params(request).get("member_id")
        member = (
            selectors.account_member_get(account=campaign.account, member_id=member_id)
            if member_id
            else None
        )
        rendered = selectors.campaign_preview(campaign=campaign, member=member)
        return Response(
            {
                "member_id": str(member.pk) if member else None,
                "subject": rendered.subject,
                "html": rendered.html,
                "text": rendered.text,
            }
        )
