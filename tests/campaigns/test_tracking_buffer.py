"""The buffer between a hit and PostgreSQL: nothing lost when Redis is down or a
flusher dies, nothing counted twice when a batch is written again; and the layer in
front of Django that answers hits without the middleware."""

from __future__ import annotations

import io
import json
import socket
import sys
from datetime import timedelta
from typing import Any

import psycopg2
import pytest
from django.db import connection
from django.test import Client

from campaigns import tracking, tracking_writer
from campaigns.models import Delivery
from campaigns.models_tracking import DeliveryActivity, LinkStats, TrackingEvent
from campaigns.tracking_views import PRE_MADE
from campaigns.tracking_writer import FLUSH_LOCK, events_write, tracking_flush
from campaigns.tracking_wsgi import with_tracking
from tests.campaigns.test_tracking import (
    BREAD,
    PERSON,
    Sent,
    flush,
    link,
    pixel,
    sent,
    stats_of,
    tracking_buffer,
)

__all__ = ["sent", "tracking_buffer"]  # fixtures


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # nothing listens there once it is closed


def test_with_redis_down_hits_are_written_directly(client: Client, sent: Sent, settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"

    assert client.get(pixel(sent.ann), **PERSON).status_code == 200
    assert client.get(link(sent.bo, 0), **PERSON)["Location"] == BREAD

    assert TrackingEvent.objects.count() == 2  # already, without a flusher
    stats = stats_of(sent.campaign)
    assert (stats["unique_opens"], stats["unique_clicks"], stats["opens"]) == (2, 1, 2)


def test_after_redis_failed_hits_skip_it_for_a_moment(client: Client, sent: Sent, settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"
    client.get(pixel(sent.ann), **PERSON)
    assert tracking._down_until  # the next hits do not wait for Redis to fail again

    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # would fail too, if it were asked
    client.get(pixel(sent.ann), **PERSON)
    assert TrackingEvent.objects.count() == 2


def test_a_flusher_that_dies_between_taking_and_writing_loses_nothing(
    client: Client, sent: Sent, monkeypatch
):
    for delivery in (sent.ann, sent.bo, sent.ann):
        client.get(pixel(delivery), **PERSON)

    def power_cut(*args: Any) -> None:
        raise RuntimeError("power cut")

    monkeypatch.setattr(tracking_writer, "_write_counts", power_cut)
    with pytest.raises(RuntimeError):
        tracking_flush()
    assert not TrackingEvent.objects.exists()  # the events' insert was rolled back
    assert len(tracking.buffer_pending()) == 3  # and the batch waits on the processing list

    monkeypatch.undo()
    assert flush().inserted == 3
    stats = stats_of(sent.campaign)
    assert (stats["unique_opens"], stats["opens"]) == (2, 3)
    assert tracking.buffer_length() == 0


def test_a_batch_written_again_after_a_crash_counts_nothing_twice(
    client: Client, sent: Sent, monkeypatch
):
    client.get(pixel(sent.ann), **PERSON)
    client.get(link(sent.ann, 0), **PERSON)
    client.get(pixel(sent.bo), **PERSON)
    # The flusher commits, then dies before it forgets the batch.
    monkeypatch.setattr(tracking, "buffer_done", lambda: None)
    assert flush().inserted == 3
    before = stats_of(sent.campaign)
    assert len(tracking.buffer_pending()) == 3

    monkeypatch.undo()
    result = flush()  # the next flusher writes the batch again

    assert (result.read, result.inserted) == (3, 0)
    assert stats_of(sent.campaign) == before
    assert TrackingEvent.objects.count() == 3
    assert tracking.buffer_length() == 0


def test_the_same_hit_written_twice_is_one_event(sent: Sent):
    hit = tracking.hit(tracking.OPEN, sent.ann.pk, None, "203.0.113.9", "Mozilla/5.0 (X11)")

    assert len(events_write([hit])) == 1
    assert events_write([hit, dict(hit)]) == []
    assert TrackingEvent.objects.count() == 1
    assert stats_of(sent.campaign)["opens"] == 1


def test_one_flusher_at_a_time(client: Client, sent: Sent):
    client.get(pixel(sent.ann), **PERSON)
    db = connection.settings_dict
    other = psycopg2.connect(
        dbname=db["NAME"], user=db["USER"], host=db["HOST"], port=db["PORT"] or 5432
    )
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [FLUSH_LOCK])
        assert tracking_flush().ran is False
        assert tracking.buffer_length() == 1  # left for the one that holds the lock
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [FLUSH_LOCK])
    finally:
        other.close()
    assert flush().inserted == 1


def test_what_is_not_a_hit_in_the_buffer_is_dropped_not_fatal(client: Client, sent: Sent):
    client.get(pixel(sent.ann), **PERSON)
    key = tracking.buffer_key()
    for junk in (b"not json", b"[1, 2]", json.dumps({"k": "o", "d": "x"}).encode()):
        tracking.buffer_client().lpush(key, junk)

    result = flush()
    assert (result.read, result.inserted) == (4, 1)
    assert tracking.buffer_length() == 0


def test_the_flush_command_drains_the_buffer(client: Client, sent: Sent):
    from django.core.management import call_command

    client.get(pixel(sent.ann), **PERSON)
    out = io.StringIO()
    call_command("tracking_flush", "--json", stdout=out)

    answer = json.loads(out.getvalue())
    assert (answer["inserted"], answer["waiting"]) == (1, 0)


# -- in front of Django ------------------------------------------------------------------


class Inner:
    """Django, as far as the layer in front can tell: records that it was asked."""

    def __init__(self) -> None:
        self.environ: dict[str, Any] | None = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        self.environ = environ
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"django"]


def wsgi_get(app: Any, path: str, method: str = "GET") -> tuple[str, dict[str, str], bytes]:
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "REMOTE_ADDR": PERSON["REMOTE_ADDR"],
        "HTTP_USER_AGENT": PERSON["HTTP_USER_AGENT"],
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr,
    }
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        answer["status"], answer["headers"] = status, dict(headers)

    body = b"".join(app(environ, start_response))
    return answer["status"], answer["headers"], body


def test_in_front_of_django_an_open_is_answered_and_buffered(sent: Sent):
    inner = Inner()
    status, headers, body = wsgi_get(with_tracking(inner), pixel(sent.ann))

    assert (status, body, headers["Content-Type"]) == ("200 OK", tracking.GIF, "image/gif")
    assert "no-store" in headers["Cache-Control"]
    assert inner.environ is None  # Django was not asked
    assert flush().inserted == 1


def test_in_front_of_django_a_known_link_is_redirected_and_bad_tokens_are_404(
    client: Client, sent: Sent
):
    inner, app = Inner(), with_tracking(Inner())
    assert wsgi_get(app, link(sent.ann, 0))[1].get("Location") is None  # not known yet: Django
    client.get(link(sent.ann, 0), **PERSON)  # Django's view looked it up

    status, headers, _ = wsgi_get(with_tracking(inner), link(sent.bo, 0))
    assert (status, headers["Location"]) == ("302 Found", BREAD)
    status, headers, _ = wsgi_get(with_tracking(inner), link(sent.bo, 0)[:-2])
    assert status == "404 Not Found" and "Location" not in headers
    assert inner.environ is None


def test_in_front_of_django_other_requests_pass_through(sent: Sent):
    for path, method in [("/healthz", "GET"), (pixel(sent.ann), "HEAD"), ("/o/a/b.gif", "GET")]:
        inner = Inner()
        assert wsgi_get(with_tracking(inner), path, method)[2] == b"django"


def test_in_front_of_django_with_redis_down_django_writes_the_same_hit(sent: Sent, settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"
    inner = Inner()
    wsgi_get(with_tracking(inner), pixel(sent.ann))

    assert inner.environ is not None
    made = inner.environ[PRE_MADE]  # the view writes this hit, with this id
    assert (made["k"], made["d"]) == ("o", sent.ann.pk)


def test_the_links_a_message_was_clicked_on_are_kept_across_batches(
    client: Client, sent: Sent, time_machine
):
    def click(delivery: Delivery, position: int) -> None:
        time_machine.shift(timedelta(minutes=1))  # a person, not a scanner's burst
        client.get(link(delivery, position), **PERSON)

    click(sent.ann, 0)
    click(sent.ann, 1)
    flush()
    click(sent.ann, 1)
    click(sent.bo, 1)
    flush()

    assert DeliveryActivity.objects.get(delivery_id=sent.ann.pk).positions == [0, 1]
    assert DeliveryActivity.objects.get(delivery_id=sent.bo.pk).positions == [1]
    per_link = {s.position: (s.unique_clicks, s.clicks) for s in LinkStats.objects.all()}
    assert per_link == {0: (1, 1), 1: (2, 3)}


def test_a_hit_postgresql_refuses_is_dropped_alone(client: Client, sent: Sent):
    client.get(pixel(sent.ann), **PERSON)
    bad = tracking.hit(tracking.CLICK, sent.bo.pk, 2**40, "203.0.113.9", "Mozilla/5.0 (X11)")
    tracking.buffer_client().lpush(tracking.buffer_key(), json.dumps(bad))
    client.get(pixel(sent.cy), **PERSON)

    result = flush()
    assert (result.read, result.inserted) == (3, 2)
    assert tracking.buffer_length() == 0
