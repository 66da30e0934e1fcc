"""Autoresponders end to end: real Celery workers with their beat evaluate the triggers
and send the steps to a real SMTP server, through the campaigns' pipeline."""

from __future__ import annotations

import email
import email.policy

import pytest

from campaigns.models import Delivery
from campaigns.models_autoresponders import Autoresponder
from members.models import Member
from tests.campaigns.pipeline_support import CountingSink, Workers, send_queue, wait_for
from tests.campaigns.test_autoresponders_support import join, make_autoresponder, make_club

__all__ = ["send_queue"]  # a fixture

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]


@pytest.fixture
def sink():
    with CountingSink() as server:
        yield server


@pytest.fixture
def workers(send_queue, sink):
    # The beat evaluates every second here (every minute in production).
    running = Workers(
        queue=send_queue, smtp_port=sink.port, concurrency=2, AUTORESPONDER_BEAT_SECONDS="1"
    )
    running.start()
    yield running
    running.stop()
    assert "Traceback" not in running.output, running.output


def _evaluations_after(ar: Autoresponder, count: int) -> None:
    """Wait until the beat has evaluated the autoresponder `count` more times."""
    seen = [Autoresponder.objects.get(pk=ar.pk).evaluated_at]

    def moved() -> bool:
        now = Autoresponder.objects.get(pk=ar.pk).evaluated_at
        if now != seen[-1]:
            seen.append(now)
        return len(seen) > count

    wait_for(moved, timeout=30, what=f"{count} more evaluations")


def test_a_welcome_sequence_reaches_each_new_member_once_per_mail(live_personas, sink, workers):
    club = make_club(live_personas.account_a)
    ar = make_autoresponder(club, trigger="subscribed", delays=(0, 0))
    gone = join(club, "gone@example.net")
    Member.objects.filter(pk=gone.pk).update(status="unsubscribed", email_status="unsubscribed")
    join(club, "ann@example.net", firstname="Ann")
    join(club, "bo@example.net")

    wait_for(lambda: sink.total >= 4, timeout=60, what="both mails to both members")
    _evaluations_after(ar, 3)  # and nothing more comes of further evaluations

    assert dict(sink.received) == {"ann@example.net": 2, "bo@example.net": 2}
    statuses = Delivery.objects.filter(campaign__autoresponder_step__autoresponder=ar)
    assert sorted(statuses.values_list("campaign__autoresponder_step__position", "status")) == [
        (1, "sent"),
        (1, "sent"),
        (2, "sent"),
        (2, "sent"),
    ]
    message = email.message_from_bytes(sink.last["ann@example.net"], policy=email.policy.default)
    assert message["Subject"] == "Mail 2 for Ann"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message.get_body(("plain",)) is not None and message.get_body(("html",)) is not None
    # Each mail counts in the member's sent_mail as it goes (the API's member object).
    counted = dict(Member.objects.filter(list=club).values_list("email", "sent_mail"))
    assert counted == {"gone@example.net": 0, "ann@example.net": 2, "bo@example.net": 2}


def test_a_birthday_mail_goes_out_once(live_personas, sink, workers):
    from django.utils import timezone

    club = make_club(live_personas.account_a)
    today = timezone.now().astimezone(timezone.get_default_timezone()).date()
    for n in range(5):  # leap years: today may be 29 February
        join(club, f"born{n}@example.net", birthdate=today.replace(year=1988 + 4 * n).isoformat())
    join(club, "later@example.net", birthdate="1990-01-01" if today.month != 1 else "1990-07-01")
    join(club, "nodate@example.net")
    ar = make_autoresponder(club, trigger="date", field_name="birthdate", yearly=True)

    wait_for(lambda: sink.total >= 5, timeout=60, what="five birthday mails")
    _evaluations_after(ar, 3)
    assert dict(sink.received) == {f"born{n}@example.net": 1 for n in range(5)}


def test_an_unsubscribed_autoresponder_says_goodbye_once_and_nothing_after(
    live_personas, sink, workers
):
    from campaigns.unsubscribe import member_unsubscribe

    club = make_club(live_personas.account_a)
    ann = join(club, "ann@example.net", firstname="Ann")
    bounced = join(club, "bad@example.net")
    ar = make_autoresponder(club, trigger="unsubscribed", name="Goodbye")
    _evaluations_after(ar, 1)
    member_unsubscribe(member=ann, campaign_id=None, source="page")
    Member.objects.filter(pk=bounced.pk).update(status="bounced", email_status="bounced")

    wait_for(lambda: sink.total >= 1, timeout=60, what="the goodbye mail")
    _evaluations_after(ar, 3)
    assert dict(sink.received) == {"ann@example.net": 1}
