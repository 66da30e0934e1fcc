"""Opens and clicks over time as an SVG line chart, drawn on the server.

No script and nothing from a CDN: the template (campaigns/detail.html) writes the
coordinates computed here into inline SVG, with a title and a description for screen
readers and the same numbers as a table beside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from django.utils import formats, timezone
from django.utils.translation import gettext as _

from campaigns.models import Campaign
from campaigns.stats import Point, campaign_activity

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 52, 12, 12, 30
X_LABELS = 6


@dataclass(frozen=True)
class Series:
    key: str  # opens, clicks, machine_opens, machine_clicks: also the CSS class
    label: str
    points: str  # "x,y x,y …" for <polyline points>


@dataclass(frozen=True)
class Tick:
    at: float  # x or y in the SVG
    label: str
    anchor: str = "middle"  # x labels: the first starts at its point, the last ends there


@dataclass(frozen=True)
class Chart:
    key: str  # unique on the page: element ids
    title: str
    description: str
    series: list[Series]
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    rows: list[tuple[str, Point]]  # the table: label, numbers
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    bottom: int = HEIGHT - BOTTOM
    right: int = WIDTH - RIGHT


def _label(point: Point, hourly: bool) -> str:
    if hourly and isinstance(point.start, datetime):
        return formats.date_format(timezone.localtime(point.start), "SHORT_DATETIME_FORMAT")
    return formats.date_format(point.start, "SHORT_DATE_FORMAT")


def _nice(value: int) -> int:
    """The axis top: 1, 2 or 5 times a power of ten, at or above ``value``."""
    if value <= 1:
        return 1
    power = 10 ** math.floor(math.log10(value))
    return next(n * power for n in (1, 2, 5, 10) if n * power >= value)


def activity_chart(*, key: str, title: str, points: list[Point], hourly: bool) -> Chart | None:
    """The chart of ``points`` (at least one), or None when there are none."""
    if not points:
        return None
    top = _nice(max(max(p.opens, p.clicks, p.machine_opens, p.machine_clicks) for p in points))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(1, len(points) - 1)

    def x(i: int) -> float:
        return round(LEFT + (i * step if len(points) > 1 else plot_w / 2), 1)

    def y(v: float) -> float:
        return round(TOP + plot_h - v * plot_h / top, 1)

    names = {
        "opens": _("Opens"),
        "clicks": _("Clicks"),
        "machine_opens": _("Machine opens"),
        "machine_clicks": _("Machine clicks"),
    }
    series = [
        Series(name, label, " ".join(f"{x(i)},{y(getattr(p, name))}" for i, p in enumerate(points)))
        for name, label in names.items()
    ]
    every = max(1, math.ceil(len(points) / X_LABELS))
    labels = [_label(p, hourly) for p in points]
    peak = max(range(len(points)), key=lambda i: points[i].opens)
    description = _(
        "%(count)s points from %(first)s to %(last)s. At most %(opens)s opens by people, "
        "at %(peak)s; %(total_opens)s opens and %(total_clicks)s clicks by people in all."
    ) % {
        "count": len(points),
        "first": labels[0],
        "last": labels[-1],
        "opens": points[peak].opens,
        "peak": labels[peak],
        "total_opens": sum(p.opens for p in points),
        "total_clicks": sum(p.clicks for p in points),
    }
    return Chart(
        key=key,
        title=title,
        description=description,
        series=series,
        y_ticks=[Tick(y(v), _number(v)) for v in (0, top / 2, top)],
        x_ticks=_x_ticks([(x(i), labels[i]) for i in range(0, len(points), every)]),
        rows=list(zip(labels, points, strict=True)),
    )


def _number(value: float) -> str:
    decimals = 0 if float(value).is_integer() else 1
    return formats.number_format(value, decimal_pos=decimals, force_grouping=True)


def _x_ticks(found: list[tuple[float, str]]) -> list[Tick]:
    if len(found) == 1:
        return [Tick(*found[0])]
    last = len(found) - 1
    return [
        Tick(at, label, "start" if i == 0 else "end" if i == last else "middle")
        for i, (at, label) in enumerate(found)
    ]


def campaign_charts(*, campaign: Campaign) -> list[Chart]:
    """The report's charts: the first two days by the hour, then by the day, with times
    in the account's time zone."""
    activity = campaign_activity(campaign=campaign)
    with timezone.override(campaign.account.timezone):
        charts = [
            activity_chart(
                key="hourly",
                title=_("Opens and clicks in the first 48 hours, by the hour"),
                points=activity.hourly,
                hourly=True,
            ),
            activity_chart(
                key="daily",
                title=_("Opens and clicks after the first 48 hours, by the day"),
                points=activity.daily,
                hourly=False,
            ),
        ]
    return [chart for chart in charts if chart is not None]
