"""Statistics in the API: a campaign's (with clicks per link and opens and clicks over
time) and a list's growth. Read from counters (campaigns/stats.py): the same cost at any
number of events. Another account's campaign or list answers 404.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from campaigns import selectors, stats
from campaigns.api import CAMPAIGN_ID, ERRORS, CampaignApiView
from campaigns.serializers import StatisticsSerializer, iso
from heyloyalty.api.base import ApiView
from heyloyalty.api.params import ParamError, to_int
from members.selectors import list_get

MAX_DAYS = 366


class LinkStatsSerializer(serializers.Serializer):
    position = serializers.IntegerField(help_text="The link's place in the message, from 0.")
    url = serializers.CharField()
    clicks = serializers.IntegerField(help_text="By people, every one.")
    unique_clicks = serializers.IntegerField(help_text="Messages in which a person clicked it.")
    machine_clicks = serializers.IntegerField()


class PointSerializer(serializers.Serializer):
    start = serializers.CharField(help_text="The hour (ISO 8601) or the day (YYYY-MM-DD).")
    opens = serializers.IntegerField()
    clicks = serializers.IntegerField()
    machine_opens = serializers.IntegerField()
    machine_clicks = serializers.IntegerField()


class CampaignStatisticsSerializer(serializers.Serializer):
    campaign_id = serializers.IntegerField()
    statistics = StatisticsSerializer()
    links = LinkStatsSerializer(many=True)
    hourly = PointSerializer(many=True, help_text="Each hour of the first 48 from the start.")
    daily = PointSerializer(
        many=True, help_text="Each day afterwards (the account's time zone), to the last one."
    )


class GrowthDaySerializer(serializers.Serializer):
    date = serializers.DateField()
    subscribed = serializers.IntegerField(help_text="Members added that day.")
    unsubscribed = serializers.IntegerField()
    size = serializers.IntegerField(
        help_text="Members on the list at the end of the day: all added up to then, less "
        "those who unsubscribed."
    )


class ListStatisticsSerializer(serializers.Serializer):
    list_id = serializers.IntegerField()
    days = GrowthDaySerializer(many=True)


def _point(point: stats.Point, tz: str) -> dict[str, Any]:
    start = point.start
    shown = iso(start, tz) if isinstance(start, datetime) else start.isoformat()
    return {
        "start": shown,
        "opens": point.opens,
        "clicks": point.clicks,
        "machine_opens": point.machine_opens,
        "machine_clicks": point.machine_clicks,
    }


class CampaignStatisticsView(CampaignApiView):
    @extend_schema(
        operation_id="campaigns_statistics",
        summary="A campaign's statistics: counts, rates, clicks per link, activity over time",
        parameters=[CAMPAIGN_ID],
        responses={200: CampaignStatisticsSerializer, 404: ERRORS[404]},
    )
    def get(self, request: Request, campaign_id: str) -> Response:
        campaign = self.campaign(request, campaign_id)
        tz = campaign.account.timezone
        activity = stats.campaign_activity(campaign=campaign)
        return Response(
            {
                "campaign_id": campaign.pk,
                "statistics": {
                    "failed": campaign.failed,
                    **selectors.campaign_statistics(campaign=campaign),
                },
                "links": [vars(link) for link in stats.campaign_links(campaign=campaign)],
                "hourly": [_point(p, tz) for p in activity.hourly],
                "daily": [_point(p, tz) for p in activity.daily],
            }
        )


class ListStatisticsView(ApiView):
    @extend_schema(
        operation_id="lists_statistics",
        summary="A list's growth: members added, unsubscribes and size per day",
        parameters=[
            OpenApiParameter("list_id", int, OpenApiParameter.PATH),
            OpenApiParameter("days", int, description=f"1 to {MAX_DAYS}, default 30"),
        ],
        responses={200: ListStatisticsSerializer, 400: ERRORS[400], 404: ERRORS[404]},
    )
    def get(self, request: Request, list_id: str) -> Response:
        member_list = list_get(account=self.account(request), list_id=list_id)
        days = to_int(self.params(request).get("days", 30), field="days")
        if not 1 <= days <= MAX_DAYS:
            raise ParamError(f"days must be between 1 and {MAX_DAYS}", field="days")
        growth = stats.list_growth(member_list=member_list, days=days)
        return Response(
            {
                "list_id": member_list.pk,
                "days": [
                    {
                        "date": date.isoformat(g.day),
                        "subscribed": g.subscribed,
                        "unsubscribed": g.unsubscribed,
                        "size": g.size,
                    }
                    for g in growth
                ],
            }
        )
