"""Line charts drawn on the server as SVG: a campaign's opens and clicks over time, and a
list's growth.

No script and nothing from a CDN: the template (campaigns/_chart.html) writes the
coordinates computed here into inline SVG, with a title and a description for screen
readers and the same numbers as a table beside it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.utils import formats, timezone
from django.utils.translation import gettext as _

from campaigns.models import Campaign
from campaigns.stats import GrowthDay, Point, campaign_activity

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 52, 12, 12, 30
X_LABELS = 6


@dataclass(frozen=True)
class Line:
    """One series to draw: ``key`` is also its CSS class (``series-<key>``)."""

    key: str
    label: str
    values: Sequence[int]


@dataclass(frozen=True)
class Series:
    key: str  # opens, clicks, machine_opens, machine_clicks, …: also the CSS class
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
    axis: str  # what a point is ("Hour", "Day"): the table's first column
    rows: list[tuple[str, list[int]]]  # the table: label, one number per series
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


def line_chart(
    *, key: str, title: str, description: str, axis: str, labels: list[str], lines: list[Line]
) -> Chart | None:
    """``lines`` over ``labels`` (one value of each line per label) on one axis from zero;
    None when there is no label."""
    if not labels:
        return None
    count = len(labels)
    top = _nice(max(max(line.values) for line in lines))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(1, count - 1)

    def x(i: int) -> float:
        return round(LEFT + (i * step if count > 1 else plot_w / 2), 1)

    def y(v: float) -> float:
        return round(TOP + plot_h - v * plot_h / top, 1)

    series = [
        Series(line.key, line.label, " ".join(f"{x(i)},{y(v)}" for i, v in enumerate(line.values)))
        for line in lines
    ]
    every = max(1, math.ceil(count / X_LABELS))
    return Chart(
        key=key,
        title=title,
        description=description,
        series=series,
        y_ticks=[Tick(y(v), _number(v)) for v in (0, top / 2, top)],
        x_ticks=_x_ticks([(x(i), labels[i]) for i in range(0, count, every)]),
        axis=axis,
        rows=[(label, [line.values[i] for line in lines]) for i, label in enumerate(labels)],
    )


def activity_chart(*, key: str, title: str, points: list[Point], hourly: bool) -> Chart | None:
    """The chart of ``points`` (at least one), or None when there are none."""
    if not points:
        return None
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
    names = {
        "opens": _("Opens"),
        "clicks": _("Clicks"),
        "machine_opens": _("Machine opens"),
        "machine_clicks": _("Machine clicks"),
    }
    return line_chart(
        key=key,
        title=title,
        description=description,
        axis=_("Hour") if hourly else _("Day"),
        labels=labels,
        lines=[
            Line(name, label, [getattr(p, name) for p in points]) for name, label in names.items()
        ],
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


def growth_charts(*, growth: list[GrowthDay]) -> list[Chart]:
    """A list's charts (campaigns.stats.list_growth): its size at the end of each day, and
    the members who joined and left each day. Two charts, because a list of thousands
    gaining a few a day would draw the daily numbers flat on the floor of one axis."""
    if not growth:
        return []
    labels = [formats.date_format(g.day, "SHORT_DATE_FORMAT") for g in growth]
    first, last = labels[0], labels[-1]
    size = line_chart(
        key="size",
        title=_("Members on the list, at the end of each day"),
        description=_("From %(first)s to %(last)s the list went from %(start)s to %(end)s members.")
        % {"first": first, "last": last, "start": growth[0].size, "end": growth[-1].size},
        axis=_("Day"),
        labels=labels,
        lines=[Line("size", _("Members"), [g.size for g in growth])],
    )
    daily = line_chart(
        key="joined",
        title=_("Subscribed and unsubscribed, by the day"),
        description=_(
            "From %(first)s to %(last)s: %(subscribed)s subscribed and %(unsubscribed)s "
            "unsubscribed."
        )
        % {
            "first": first,
            "last": last,
            "subscribed": sum(g.subscribed for g in growth),
            "unsubscribed": sum(g.unsubscribed for g in growth),
        },
        axis=_("Day"),
        labels=labels,
        lines=[
            Line("subscribed", _("Subscribed"), [g.subscribed for g in growth]),
            Line("unsubscribed", _("Unsubscribed"), [g.unsubscribed for g in growth]),
        ],
    )
    return [chart for chart in (size, daily) if chart is not None]
