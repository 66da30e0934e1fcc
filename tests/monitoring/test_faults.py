"""Break things on purpose (issue 8): Redis, PostgreSQL, the mail relay, the worker and beat
are each stopped for real and started again. Each time: /readyz turns red within 30 s, the
technicians get one alert (mail and webhook), the banner is on the dashboard, nothing
that was accepted is lost; back up: /readyz green, one recovery alert, the incident closed.

The stack is this module's own (tests/monitoring/stack.py): its PostgreSQL and Redis on
free ports, never the machine's shared ones. Thresholds are seconds instead of the
defaults (test_heartbeats.py shows the defaults give 30 s). Run alone with ``-m faults``.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import requests
from django.utils import timezone

from tests.monitoring.conftest import WebhookReceiver, webhook_server
from tests.monitoring.stack import ALERTS, TECHNICIAN, Stack, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.timeout(240)]

RED_WITHIN = 30
BANNER = 'class="incident-banner"'
PROBLEM = "[Heyloyalty alert] PROBLEM"
RECOVERED = "[Heyloyalty alert] RECOVERED"


@pytest.fixture(scope="module")
def hook() -> Iterator[WebhookReceiver]:
    with webhook_server() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest, hook: WebhookReceiver) -> Iterator[Stack]:
    # Not under pytest's basetemp: that is shared by every pytest run of this user.
    work = Path(tempfile.mkdtemp(prefix="heyloyalty-faults-"))
    stack = Stack(work)
    failed = request.session.testsfailed
    try:
        stack.start(hook.url)
        wait_for(lambda: stack.readyz()[0] == 200, "a green /readyz at the start", 60)
        wait_for(stack.quiet, "the watchdog closing the incident of the start-up", 60)
        yield stack
    finally:
        if request.session.testsfailed != failed or not stack.processes:
            for process in stack.processes.values():
                print(f"--- {process.name}\n{process.output()[-4000:]}")
        stack.stop()
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def owner(stack: Stack) -> requests.Session:
    return stack.signed_in()


def incidents(stack: Stack) -> list[tuple[Any, ...]]:
    with (
        psycopg2.connect(
            host="127.0.0.1", port=stack.postgres.port, user="postgres", dbname="heyloyalty"
        ) as conn,
        conn.cursor() as cursor,
    ):
        cursor.execute(
            "SELECT key, components, started_at, resolved_at, alerted_at, recovery_alerted_at "
            "FROM monitoring_incident WHERE source = 'watchdog' ORDER BY started_at"
        )
        return cursor.fetchall()


def delivered(stack: Stack, subject: str, timeout: float = 60) -> None:
    """Both members of the list got the campaign, once each."""
    wait_for(
        lambda: stack.relay.recipients_of(subject) == ["ann@members.example", "bo@members.example"],
        f"the campaign {subject!r} at the relay",
        timeout,
    )


def break_and_mend(
    stack: Stack,
    hook: WebhookReceiver,
    owner: requests.Session,
    component: str,
    *,
    stop: Callable[[], None],
    start: Callable[[], None],
    during: Callable[[], None] = lambda: None,
    after: Callable[[], None] = lambda: None,
) -> None:
    """1. Stop it: red within 30 s, one alert by mail and webhook, the banner.
    2. ``during``: what the product must still do (or refuse cleanly) meanwhile.
    3. Start it: green, one recovery alert, the incident closed; then ``after``."""
    wait_for(stack.quiet, "a quiet watchdog before the fault", 60)
    problems = len(stack.alerts.subjects(PROBLEM))
    recoveries = len(stack.alerts.subjects(RECOVERED))
    posts = len(hook.posts)
    stop()
    try:
        broken(stack, hook, owner, component, problems, posts)
        during()
    finally:
        start()  # also after a failed assertion: the next fault starts from a whole stack
    mended(stack, hook, owner, component, problems, recoveries, posts)
    after()


def broken(
    stack: Stack,
    hook: WebhookReceiver,
    owner: requests.Session,
    component: str,
    problems: int,
    posts: int,
) -> None:
    """Red within 30 s, one alert by mail and webhook, the banner."""
    stopped = time.monotonic()
    _, body = wait_for(
        lambda: (
            (r := stack.readyz())[0] == 503 and r[1]["checks"][component]["status"] == "fail" and r
        ),
        f"/readyz red for {component}",
        RED_WITHIN,
    )
    assert time.monotonic() - stopped < RED_WITHIN
    assert body["status"] == "fail"

    wait_for(lambda: len(stack.alerts.subjects(PROBLEM)) > problems, "the problem alert", 45)
    new = stack.alerts.subjects(PROBLEM)[problems:]
    assert len(new) == 1 and component in new[0], new
    assert stack.alerts.recipients_of(new[0]) == sorted([ALERTS, TECHNICIAN])
    wait_for(lambda: len(hook.posts) > posts, "the problem webhook", 30)
    assert [p["event"] for p in hook.payloads()[posts:]] == ["problem"]

    def banner() -> list[requests.Response]:
        answer = owner.get(f"{stack.url}/", timeout=10)
        return [answer] if BANNER in answer.text else []  # a 503 Response is falsy

    (page,) = wait_for(banner, "the banner on the dashboard", 20)
    assert page.status_code in (200, 503)
    assert "We are working on a problem" in page.text


def mended(
    stack: Stack,
    hook: WebhookReceiver,
    owner: requests.Session,
    component: str,
    problems: int,
    recoveries: int,
    posts: int,
) -> None:
    """Green, one recovery alert, no banner, the incident closed in the database."""
    wait_for(lambda: stack.readyz()[0] == 200, f"/readyz green after {component}", 60)
    wait_for(lambda: len(stack.alerts.subjects(RECOVERED)) > recoveries, "the recovery alert", 45)
    time.sleep(2.5)  # a few more watchdog passes: nothing more may be said
    assert len(stack.alerts.subjects(PROBLEM)) == problems + 1, stack.alerts.subjects()
    assert len(stack.alerts.subjects(RECOVERED)) == recoveries + 1, stack.alerts.subjects()
    assert [p["event"] for p in hook.payloads()[posts:]] == ["problem", "recovery"]
    wait_for(lambda: BANNER not in owner.get(f"{stack.url}/", timeout=10).text, "no banner", 20)

    last = incidents(stack)[-1]
    assert component in last[1]
    assert last[3] is not None and last[4] is not None and last[5] is not None, last
    assert all(row[3] is not None for row in incidents(stack))  # none left open


def test_the_mail_relay(stack: Stack, hook: WebhookReceiver, owner: requests.Session):
    def during() -> None:
        answer = stack.send_campaign("While the relay was down")
        assert answer.status_code == 202, answer.text

    break_and_mend(
        stack, hook, owner, "relay", stop=stack.relay.stop, start=stack.relay.start,
        during=during, after=lambda: delivered(stack, "While the relay was down"),
    )  # fmt: skip


def test_the_worker(stack: Stack, hook: WebhookReceiver, owner: requests.Session):
    worker = stack.processes["worker"]

    def during() -> None:
        answer = stack.send_campaign("While the worker was dead")
        assert answer.status_code == 202, answer.text

    break_and_mend(
        stack, hook, owner, "worker", stop=worker.stop, start=worker.start,
        during=during, after=lambda: delivered(stack, "While the worker was dead"),
    )  # fmt: skip


def test_beat(stack: Stack, hook: WebhookReceiver, owner: requests.Session):
    beat = stack.processes["beat"]
    subject = "Scheduled while beat was down"

    def during() -> None:
        created = stack.api("POST", "campaigns", {
            "name": subject, "subject": subject, "from_name": "Shop",
            "from_email": "news@shop.example", "html": "<p>Hi</p>",
            "list_ids[0]": str(stack.seed["list"]),
        })  # fmt: skip
        at = (timezone.now() + timedelta(seconds=2)).isoformat()
        answer = stack.api("POST", f"campaigns/{created.json()['id']}/send", {"scheduled_at": at})
        assert answer.status_code == 202, answer.text
        time.sleep(3)
        assert not stack.relay.recipients_of(subject)  # nobody starts it while beat is down

    break_and_mend(
        stack, hook, owner, "beat", stop=beat.stop, start=beat.start,
        during=during, after=lambda: delivered(stack, subject),
    )  # fmt: skip


def test_redis(stack: Stack, hook: WebhookReceiver, owner: requests.Session):
    subject = "Sent while Redis was down"
    answers: dict[str, int] = {}

    def during() -> None:
        # Reads still work; what needs the queue answers 503, never 500.
        lists = stack.api("GET", "lists")
        assert lists.status_code == 200, lists.text
        assert owner.get(f"{stack.url}/lists/", timeout=10).status_code == 200
        assert owner.get(f"{stack.url}/campaigns/", timeout=10).status_code == 200
        answers["send"] = stack.send_campaign(subject).status_code
        assert answers["send"] in (202, 503)

    def after() -> None:
        if answers["send"] == 202:  # accepted: it must go out
            delivered(stack, subject)

    break_and_mend(
        stack, hook, owner, "redis", stop=stack.redis.stop, start=stack.redis.start,
        during=during, after=after,
    )  # fmt: skip


def test_postgresql(stack: Stack, hook: WebhookReceiver, owner: requests.Session):
    def during() -> None:
        page = owner.get(f"{stack.url}/campaigns/", timeout=10)
        assert page.status_code == 503
        assert BANNER in page.text and "Temporarily unavailable" in page.text
        api = stack.api("GET", "lists")
        assert api.status_code == 503
        assert api.json() == {"code": 503, "message": "Service Unavailable"}

    break_and_mend(
        stack, hook, owner, "database", stop=stack.postgres.stop, start=stack.postgres.start,
        during=during,
    )  # fmt: skip
