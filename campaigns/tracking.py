"""The hit side of tracking: what the open pixel and the click redirect do per request.

These are the busiest URLs of the product, so a hit costs no database write: the event
(JSON, with an id made here) is pushed onto a Redis list, and the flusher
(campaigns/tracking_writer.py) writes batches to PostgreSQL. When Redis does not answer,
the hit is written directly instead, and Redis is left alone for a moment so that each
hit does not wait for it to fail again.

A click redirects to the URL of the campaign's Link row at the position its token names;
the URL never comes from the request. Finding it takes two lookups, both kept in process
memory because neither answer ever changes: the delivery's campaign (loaded a block of
delivery ids at a time) and the campaign's links.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import logging
import random
import threading
import time
import uuid
from bisect import bisect_right
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import redis
from django.conf import settings
from django.db import connection
from redis.backoff import NoBackoff
from redis.retry import Retry

from campaigns import tokens
from campaigns.models_tracking import USER_AGENT_MAX

log = logging.getLogger(__name__)

# The smallest transparent GIF: 1x1, one colour, transparent (43 bytes).
GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff"
    b"!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
NO_CACHE = "no-store, no-cache, must-revalidate, max-age=0, private"

OPEN, CLICK = "o", "c"
REDIS_DOWN_SECONDS = 2.0  # after a failure, hits go straight to PostgreSQL this long


def buffer_key() -> str:
    """The Redis list the hits wait in; ``<key>:processing`` holds the batch being written.
    A setting so that test runs sharing one Redis do not take each other's hits."""
    return str(getattr(settings, "TRACKING_BUFFER_KEY", "hl:tracking"))


# -- the token ---------------------------------------------------------------------------


def _canonical(token: str) -> bool:
    """Whether the token is the one encoding of its bytes. Base32's last letter carries
    bits that decoding ignores, so several strings decode to the same signed payload:
    one of them was mailed, any other was changed on the way."""
    try:
        raw = base64.b32decode(token.upper() + "=" * (-len(token) % 8))
    except (binascii.Error, ValueError):
        return False
    return tokens.encode(raw) == token.lower()


def open_delivery(token: str) -> int | None:
    """The delivery an open token names, or None for a token that is not ours as sent."""
    return tokens.open_read(token) if _canonical(token) else None


def click_target(token: str) -> tuple[int, int] | None:
    """(delivery id, link position) of a click token, or None."""
    return tokens.click_read(token) if _canonical(token) else None


# -- the event ---------------------------------------------------------------------------


def event_id() -> str:
    """A UUIDv7 (RFC 9562) in hex: time-ordered, so the unique index grows at its end."""
    ms = time.time_ns() // 1_000_000
    rand = random.getrandbits(80)  # unique, not secret: a forged id would gain nothing
    value = (ms & (2**48 - 1)) << 80 | 0x7 << 76 | (rand >> 68) << 64 | 0b10 << 62
    return uuid.UUID(int=value | (rand & (2**62 - 1))).hex


def hit(kind: str, delivery_id: int, position: int | None, ip: str, agent: str) -> dict[str, Any]:
    return {
        "id": event_id(),
        "k": kind,
        "d": delivery_id,
        "p": position,
        "t": time.time(),
        "ip": ip,
        "ua": agent[:USER_AGENT_MAX],
    }


def truncate_ip(ip: str | None) -> str | None:
    """The /24 (IPv4) or /48 (IPv6) the address is in: what is kept of it."""
    parts = (ip or "").split(".")
    if len(parts) == 4 and all(p.isascii() and p.isdigit() and int(p) < 256 for p in parts):
        return f"{int(parts[0])}.{int(parts[1])}.{int(parts[2])}.0"  # the usual case, quick
    try:
        address = ipaddress.ip_address(ip or "")
    except ValueError:
        return None
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)


# -- the buffer --------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    # Short timeouts and no retries: a hit must not wait long for a Redis that is gone;
    # it is written directly instead (the event id makes a doubtful push harmless).
    return redis.Redis.from_url(
        url, socket_connect_timeout=0.5, socket_timeout=1.0, retry=Retry(NoBackoff(), 0)
    )


def buffer_client() -> redis.Redis:
    return _client(settings.REDIS_URL)


_down_until: dict[str, float] = {}
_thread = threading.local()


def _send(url: str, key: str, payload: str) -> None:
    """LPUSH on a connection of this thread's own: a third of the CPU of going through
    the client and its pool per command, which this endpoint pays on every hit."""
    conn = getattr(_thread, "conn", None)
    if conn is None or _thread.url != url:
        pool = _client(url).connection_pool
        conn = pool.connection_class(**pool.connection_kwargs)
        _thread.conn, _thread.url = conn, url
    try:
        conn.send_command("LPUSH", key, payload)
        conn.read_response()
    except BaseException:
        _thread.conn = None
        conn.disconnect()
        raise


def buffer_push(event: dict[str, Any]) -> bool:
    """Whether the hit is in the buffer; False when Redis failed (or failed just now)."""
    url = settings.REDIS_URL
    if _down_until.get(url, 0.0) > time.monotonic():
        return False
    try:
        _send(url, buffer_key(), json.dumps(event, separators=(",", ":")))
    except redis.RedisError as error:
        _down_until[url] = time.monotonic() + REDIS_DOWN_SECONDS
        log.warning("tracking: Redis failed (%s); writing hits directly for a while", error)
        return False
    return True


def record(event: dict[str, Any]) -> None:
    """Keep one hit: in the buffer, or else directly in PostgreSQL."""
    if not buffer_push(event):
        from campaigns.tracking_writer import events_write

        events_write([event])


# Takes up to ARGV[1] of the oldest hits and moves them to the processing list in one
# step: a flusher that dies afterwards leaves them there for the next one.
_TAKE = """
local items = redis.call('LRANGE', KEYS[1], -tonumber(ARGV[1]), -1)
local n = #items
if n == 0 then return items end
redis.call('LTRIM', KEYS[1], 0, -n - 1)
for i = 1, n, 1000 do
  redis.call('RPUSH', KEYS[2], unpack(items, i, math.min(i + 999, n)))
end
return items
"""


def buffer_pending() -> list[bytes | str]:
    """The batch a flusher took but did not finish (it died, or its write failed),
    oldest first."""
    return list(buffer_client().lrange(f"{buffer_key()}:processing", 0, -1))[::-1]


def buffer_take(count: int) -> list[bytes | str]:
    """Up to ``count`` of the oldest hits, oldest first (LPUSH puts the newest at the
    head of the list), moved onto the processing list."""
    client = buffer_client()
    script = client.register_script(_TAKE)
    return list(script(keys=[buffer_key(), f"{buffer_key()}:processing"], args=[count]))[::-1]


def buffer_done() -> None:
    """The batch taken is written (committed): forget it."""
    buffer_client().delete(f"{buffer_key()}:processing")


def buffer_length() -> int:
    client = buffer_client()
    return int(client.llen(buffer_key())) + int(client.llen(f"{buffer_key()}:processing"))


# -- where a click leads -----------------------------------------------------------------


@dataclass(frozen=True)
class _Block:
    """The delivery ids of one block as runs of consecutive ids of one campaign."""

    starts: list[int]
    ends: list[int]
    campaigns: list[int]

    def campaign_of(self, delivery_id: int) -> int | None:
        i = bisect_right(self.starts, delivery_id) - 1
        if i >= 0 and delivery_id <= self.ends[i]:
            return self.campaigns[i]
        return None


class DeliveryCampaigns:
    """Delivery id -> campaign id, loaded ``BLOCK`` ids at a time (a campaign's deliveries
    are written together, so a block is usually one run of one campaign). An id the
    block did not have when it was loaded is looked up alone."""

    BLOCK = 1024
    MAX_BLOCKS = 2048
    MAX_SINGLES = 50_000

    def __init__(self) -> None:
        self._blocks: OrderedDict[int, _Block] = OrderedDict()
        self._singles: OrderedDict[int, int] = OrderedDict()
        self._lock = threading.Lock()

    def cached(self, delivery_id: int) -> int | None:
        block = self._blocks.get(delivery_id // self.BLOCK)
        found = block.campaign_of(delivery_id) if block is not None else None
        return found if found is not None else self._singles.get(delivery_id)

    def campaign_of(self, delivery_id: int) -> int | None:
        found = self.cached(delivery_id)
        if found is not None:
            return found
        number = delivery_id // self.BLOCK
        if number not in self._blocks:
            self._remember_block(number, self._load_block(number))
            found = self.cached(delivery_id)
            if found is not None:
                return found
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT campaign_id FROM campaigns_delivery WHERE id = %s", [delivery_id]
            )
            row = cursor.fetchone()
        if row is None:
            return None
        with self._lock:
            self._singles[delivery_id] = int(row[0])
            while len(self._singles) > self.MAX_SINGLES:
                self._singles.popitem(last=False)
        return int(row[0])

    def _load_block(self, number: int) -> _Block:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT id, campaign_id FROM campaigns_delivery WHERE id >= %s AND id < %s "
                "ORDER BY id",
                [number * self.BLOCK, (number + 1) * self.BLOCK],
            )
            rows = cursor.fetchall()
        starts: list[int] = []
        ends: list[int] = []
        campaigns: list[int] = []
        for delivery_id, campaign_id in rows:
            if campaigns and campaigns[-1] == campaign_id and ends[-1] == delivery_id - 1:
                ends[-1] = delivery_id
            else:
                starts.append(delivery_id)
                ends.append(delivery_id)
                campaigns.append(campaign_id)
        return _Block(starts, ends, campaigns)

    def _remember_block(self, number: int, block: _Block) -> None:
        with self._lock:
            self._blocks[number] = block
            while len(self._blocks) > self.MAX_BLOCKS:
                self._blocks.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._blocks.clear()
            self._singles.clear()


class CampaignLinks:
    """Campaign id -> its tracked URLs by position (Link rows never change once written)."""

    MAX_CAMPAIGNS = 2048

    def __init__(self) -> None:
        self._links: OrderedDict[int, dict[int, str]] = OrderedDict()
        self._lock = threading.Lock()

    def cached(self, campaign_id: int, position: int) -> str | None:
        links = self._links.get(campaign_id)
        return links.get(position) if links is not None else None

    def url(self, campaign_id: int, position: int) -> str | None:
        found = self.cached(campaign_id, position)
        if found is not None:
            return found
        # Not known yet (or not at all: a position the campaign does not have).
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT position, url FROM campaigns_link WHERE campaign_id = %s", [campaign_id]
            )
            links = {int(p): str(u) for p, u in cursor.fetchall()}
        with self._lock:
            self._links[campaign_id] = links
            while len(self._links) > self.MAX_CAMPAIGNS:
                self._links.popitem(last=False)
        return links.get(position)

    def clear(self) -> None:
        with self._lock:
            self._links.clear()


deliveries = DeliveryCampaigns()
links = CampaignLinks()


def click_url_cached(delivery_id: int, position: int) -> str | None:
    """Where the click leads, if process memory knows it (no query)."""
    campaign_id = deliveries.cached(delivery_id)
    return None if campaign_id is None else links.cached(campaign_id, position)


def click_url(delivery_id: int, position: int) -> str | None:
    """Where the click leads: the campaign's own URL at that position, or None."""
    campaign_id = deliveries.campaign_of(delivery_id)
    return None if campaign_id is None else links.url(campaign_id, position)
