"""Which opens and clicks a machine made rather than the recipient.

Counted apart from human ones, never dropped: the customer sees both. The rules, and why
each is believable:

- **Apple Mail Privacy Protection** loads every image of every message when the mail
  arrives, from Apple's own network, whether or not anyone reads it. Apple holds all of
  17.0.0.0/8 (ARIN NET-17-0-0-0-1), and its proxy sends the bare user agent
  ``Mozilla/5.0`` that no browser or mail client sends. Either marks an open.
- **Prefetching at delivery**: an open within ``PREFETCH_SECONDS`` of the relay accepting
  the message is a proxy or a security gateway loading images, not a person: the message
  has hardly reached the mailbox. (Also an open "before" it was sent: clocks differ.)
- **Link scanners** (Microsoft Defender Safe Links, Mimecast, Proofpoint, Barracuda…)
  follow links before the recipient sees the message: a click within ``SCAN_SECONDS`` of
  delivery, or a click on a different link of the same message within ``BURST_SECONDS``
  of the previous click (no person clicks two links in one second), is a machine's.
- **Known robots**: an empty user agent, HTTP libraries, headless browsers, link
  previewers and the scanners that name themselves.

Not a machine: **Gmail's and Yahoo's image proxies** ("GoogleImageProxy",
"YahooMailProxy") fetch the images when the person opens the message (and cache them,
so repeated opens are not seen), so their first fetch is a real open. A proxy that
prefetches at delivery time is caught by the prefetch rule above whatever it calls itself.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from functools import lru_cache

PREFETCH_SECONDS = 5
SCAN_SECONDS = 20
BURST_SECONDS = 1.0

APPLE = ipaddress.ip_network("17.0.0.0/8")
APPLE_PROXY_AGENT = "Mozilla/5.0"

_ROBOT = re.compile(
    r"(?:^|[^a-z])bot\b|googlebot|bingbot|slackbot|twitterbot|linkedinbot|discordbot"
    r"|telegrambot|applebot|yandexbot|duckduckbot|petalbot|semrushbot|ahrefsbot|crawler"
    r"|spider|scanner|python-|urllib|curl/|wget/|go-http-client"
    r"|java/|okhttp|libwww|httpclient|axios/|node-fetch|headlesschrome|phantomjs|slurp"
    r"|facebookexternalhit|whatsapp|skypeuripreview|barracuda|mimecast|proofpoint|ppops"
    r"|symantec|messagelabs|trendmicro|forcepoint|ironport|fortinet|sophos|avanan"
    r"|safelinks|microsoft office existence",
    re.IGNORECASE,
)


@lru_cache(maxsize=4096)  # the same few hundred agents come again and again
def is_robot_agent(user_agent: str) -> bool:
    return not user_agent.strip() or bool(_ROBOT.search(user_agent))


def is_apple_proxy(ip: str | None, user_agent: str) -> bool:
    if user_agent.strip() == APPLE_PROXY_AGENT:
        return True
    if not ip or not (ip.startswith("17.") or ":" in ip):
        return False  # most hits: an IPv4 address outside 17/8, without parsing it
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address in APPLE


def _seconds_after(at: datetime, sent_at: datetime | None) -> float | None:
    return None if sent_at is None else (at - sent_at).total_seconds()


def machine_open(*, at: datetime, sent_at: datetime | None, ip: str | None, agent: str) -> bool:
    after = _seconds_after(at, sent_at)
    if after is not None and after < PREFETCH_SECONDS:
        return True
    return is_apple_proxy(ip, agent) or is_robot_agent(agent)


def machine_click(
    *,
    at: datetime,
    sent_at: datetime | None,
    agent: str,
    position: int,
    previous_at: datetime | None,
    previous_position: int | None,
) -> bool:
    """``previous_*``: the message's click before this one, by anyone."""
    after = _seconds_after(at, sent_at)
    if after is not None and after < SCAN_SECONDS:
        return True
    if (
        previous_at is not None
        and previous_position != position
        and abs((at - previous_at).total_seconds()) <= BURST_SECONDS
    ):
        return True
    return is_robot_agent(agent)
