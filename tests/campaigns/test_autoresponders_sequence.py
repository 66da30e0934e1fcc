"""When an autoresponder's mail is due (delay, send window), how often a member may get
it (block time, cap), multi-step sequences, senders woken, and two evaluations at once."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from campaigns import autoresponder_triggers
from campaigns.autoresponder_triggers import autoresponders_evaluate
from campaigns.models import Delivery
from members import services as member_services
from tests.campaigns.pipeline_support import send_queue
from tests.campaigns.test_autoresponders_support import (
    club,
    cph,
    join,
    make_autoresponder,
    make_club,
    mark_sent,
    rows,
    step_rows,
)

__all__ = ["club", "send_queue"]  # fixtures


def test_the_first_mail_waits_for_its_delay(club, time_machine):
    time_machine.move_to(cph(2026, 3, 2, 10, 0), tick=False)
    ar = make_autoresponder(club, trigger="subscribed", delays=(90,))
    time_machine.move_to(cph(2026, 3, 2, 10, 0, 30), tick=False)
    join(club, "ann@example.net")
    time_machine.move_to(cph(2026, 3, 2, 10, 1), tick=False)
    autoresponders_evaluate()
    [delivery] = step_rows(ar)
    assert delivery.next_attempt_at == cph(2026, 3, 2, 11, 30, 30)


@pytest.mark.parametrize(
    ("window", "joined", "due"),
    [
        ((9, 17), cph(2026, 3, 2, 20, 15), cph(2026, 3, 3, 9, 0)),  # evening: tomorrow 9
        ((9, 17), cph(2026, 3, 2, 7, 15), cph(2026, 3, 2, 9, 0)),  # early: today 9
        ((9, 17), cph(2026, 3, 2, 16, 59), cph(2026, 3, 2, 16, 59)),  # inside
        ((9, 17), cph(2026, 3, 2, 17, 0), cph(2026, 3, 3, 9, 0)),  # the end is not inside
        ((22, 6), cph(2026, 3, 2, 23, 30), cph(2026, 3, 2, 23, 30)),  # over midnight
        ((22, 6), cph(2026, 3, 3, 5, 59), cph(2026, 3, 3, 5, 59)),
        ((22, 6), cph(2026, 3, 3, 12, 0), cph(2026, 3, 3, 22, 0)),
        ((8, 24), cph(2026, 3, 2, 23, 59), cph(2026, 3, 2, 23, 59)),
        # Summer time starts on 29 March 2026 in Copenhagen: 9 o'clock is still 9 there.
        ((9, 17), cph(2026, 3, 28, 18, 0), cph(2026, 3, 29, 9, 0)),
    ],
)
def test_mail_due_outside_the_send_window_waits_for_it(club, time_machine, window, joined, due):
    time_machine.move_to(cph(2026, 3, 1, 0, 0), tick=False)
    ar = make_autoresponder(
        club, trigger="subscribed", window_start_hour=window[0], window_end_hour=window[1]
    )
    time_machine.move_to(joined, tick=False)
    join(club, "ann@example.net")
    autoresponders_evaluate()
    [delivery] = step_rows(ar)
    assert delivery.next_attempt_at == due


def test_the_window_is_in_the_lists_time_zone(club, time_machine):
    club.timezone = "America/New_York"
    club.save()
    time_machine.move_to(cph(2026, 3, 1, 0, 0), tick=False)
    ar = make_autoresponder(club, trigger="subscribed", window_start_hour=9, window_end_hour=17)
    time_machine.move_to(cph(2026, 3, 2, 14, 0), tick=False)  # 8:00 in New York
    join(club, "ann@example.net")
    autoresponders_evaluate()
    [delivery] = step_rows(ar)
    assert delivery.next_attempt_at == cph(2026, 3, 2, 15, 0)  # 9:00 in New York


def _gold_again(club, time_machine, ann, day: int) -> None:
    """Ann's level goes to silver and back to gold on that day: one occurrence."""
    update = member_services.member_update
    time_machine.move_to(cph(2026, 3, day, 10, 0), tick=False)
    update(member=ann, values={"level": "silver"}, replace=False)
    update(member=ann, values={"level": "gold"}, replace=False)
    time_machine.move_to(cph(2026, 3, day, 10, 1), tick=False)
    autoresponders_evaluate()
    autoresponders_evaluate()


def test_block_time_keeps_a_second_mail_away_for_its_days(club, time_machine):
    time_machine.move_to(cph(2026, 3, 1, 10, 0), tick=False)
    ann = join(club, "ann@example.net", level="silver")
    ar = make_autoresponder(
        club,
        trigger="field_changed",
        field_name="level",
        field_value="gold",
        block_days=7,
    )
    _gold_again(club, time_machine, ann, 2)
    assert len(rows(ar)) == 1
    _gold_again(club, time_machine, ann, 3)  # still queued: blocked
    mark_sent(ar, 1, cph(2026, 3, 3, 12, 0))
    _gold_again(club, time_machine, ann, 9)  # sent 6 days ago: blocked
    assert len(rows(ar)) == 1
    _gold_again(club, time_machine, ann, 11)  # sent 8 days ago
    assert len(rows(ar)) == 2


def test_two_changes_in_one_minute_make_one_mail_under_a_block_time(club, time_machine):
    time_machine.move_to(cph(2026, 3, 1, 10, 0), tick=False)
    ann = join(club, "ann@example.net", level="silver")
    ar = make_autoresponder(
        club, trigger="field_changed", field_name="level", field_value="gold", block_days=1
    )
    update = member_services.member_update
    time_machine.move_to(cph(2026, 3, 2, 10, 0), tick=False)
    for level in ("gold", "silver", "gold"):
        update(member=ann, values={"level": level}, replace=False)
    time_machine.move_to(cph(2026, 3, 2, 10, 1), tick=False)
    autoresponders_evaluate()
    time_machine.move_to(cph(2026, 3, 2, 10, 2), tick=False)
    autoresponders_evaluate()
    assert len(rows(ar)) == 1


def test_the_cap_stops_a_member_after_so_many_mails(club, time_machine):
    time_machine.move_to(cph(2026, 3, 1, 10, 0), tick=False)
    ann = join(club, "ann@example.net", level="silver")
    bo = join(club, "bo@example.net", level="silver")
    ar = make_autoresponder(
        club, trigger="field_changed", field_name="level", field_value="gold", cap_per_member=2
    )
    for day in (2, 3, 4, 5):
        _gold_again(club, time_machine, ann, day)
    _gold_again(club, time_machine, bo, 6)
    assert [email for _, email, _ in rows(ar)] == [
        "ann@example.net",
        "ann@example.net",
        "bo@example.net",
    ]


def test_a_sequence_sends_each_step_once_after_the_one_before(club, time_machine):
    time_machine.move_to(cph(2026, 3, 1, 10, 0), tick=False)
    ar = make_autoresponder(club, trigger="subscribed", delays=(0, 60 * 24, 60 * 24 * 3))
    time_machine.move_to(cph(2026, 3, 1, 10, 0, 30), tick=False)
    ann = join(club, "ann@example.net")
    time_machine.move_to(cph(2026, 3, 1, 10, 1), tick=False)
    assert sum(autoresponders_evaluate().values()) == 1
    time_machine.move_to(cph(2026, 3, 1, 10, 2), tick=False)
    assert sum(autoresponders_evaluate().values()) == 0  # step 1 not sent yet
    mark_sent(ar, 1, cph(2026, 3, 1, 10, 2, 10))
    time_machine.move_to(cph(2026, 3, 1, 10, 3), tick=False)
    assert sum(autoresponders_evaluate().values()) == 1
    assert sum(autoresponders_evaluate().values()) == 0
    [second] = step_rows(ar, 2)
    assert second.next_attempt_at == cph(2026, 3, 2, 10, 2, 10)
    assert (second.member_id, second.occurrence) == (ann.pk, str(ann.pk))
    mark_sent(ar, 2, cph(2026, 3, 2, 10, 2, 30))
    time_machine.move_to(cph(2026, 3, 2, 10, 3), tick=False)
    assert sum(autoresponders_evaluate().values()) == 1
    mark_sent(ar, 3, cph(2026, 3, 5, 10, 3))
    for moment in (cph(2026, 3, 5, 10, 4), cph(2026, 3, 6, 10, 4)):
        time_machine.move_to(moment, tick=False)
        assert sum(autoresponders_evaluate().values()) == 0
    assert [p for p, _, _ in rows(ar)] == [1, 2, 3]


def test_a_member_who_left_gets_no_further_step(club, time_machine):
    time_machine.move_to(cph(2026, 3, 1, 10, 0), tick=False)
    ar = make_autoresponder(club, trigger="subscribed", delays=(0, 60))
    time_machine.move_to(cph(2026, 3, 1, 10, 0, 30), tick=False)
    ann = join(club, "ann@example.net")
    time_machine.move_to(cph(2026, 3, 1, 10, 1), tick=False)
    autoresponders_evaluate()
    mark_sent(ar, 1, cph(2026, 3, 1, 10, 1, 10))
    ann.status = ann.email_status = "unsubscribed"
    ann.save()
    time_machine.move_to(cph(2026, 3, 1, 10, 2), tick=False)
    autoresponders_evaluate()
    assert [p for p, _, _ in rows(ar)] == [1]


def test_bounced_addresses_elsewhere_in_the_account_get_nothing(club, personas, time_machine):
    other = member_services.list_create(account=personas.account_a, name="Other")
    gone = join(other, "dead@example.net")
    gone.email_status = "bounced"
    gone.save()
    time_machine.move_to(cph(2026, 3, 1, 10, 0), tick=False)
    ar = make_autoresponder(club, trigger="subscribed")
    time_machine.move_to(cph(2026, 3, 1, 10, 0, 30), tick=False)
    join(club, "dead@example.net")
    join(club, "alive@example.net")
    autoresponders_evaluate()
    assert [email for _, email, _ in rows(ar)] == ["alive@example.net"]


def test_senders_are_woken_for_rows_due_now_not_for_rows_due_later(
    club, time_machine, monkeypatch, django_capture_on_commit_callbacks
):
    woken: list[int] = []
    monkeypatch.setattr(
        autoresponder_triggers, "deliveries_added", lambda *, campaign_id: woken.append(campaign_id)
    )
    time_machine.move_to(cph(2026, 3, 1, 10, 0), tick=False)
    now = make_autoresponder(club, trigger="subscribed", name="Now")
    later = make_autoresponder(club, trigger="subscribed", name="Later", delays=(30,))
    time_machine.move_to(cph(2026, 3, 1, 10, 0, 30), tick=False)
    join(club, "ann@example.net")
    autoresponders_evaluate()
    first = now.steps.get().campaign_id
    assert woken == [first]
    # Half an hour on, the delayed row is due: a sender for it.
    time_machine.move_to(cph(2026, 3, 1, 10, 31), tick=False)
    woken.clear()
    autoresponders_evaluate()
    assert sorted(woken) == sorted([first, later.steps.get().campaign_id])


@pytest.mark.django_db(transaction=True)
def test_two_evaluations_at_once_write_each_mail_once(live_personas, send_queue, time_machine):
    member_list = make_club(live_personas.account_a)
    time_machine.move_to(cph(2026, 3, 1, 10, 0), tick=False)
    ar = make_autoresponder(member_list, trigger="subscribed", delays=(0,), block_days=1)
    birthday = make_autoresponder(member_list, trigger="date", field_name="birthdate", yearly=True)
    time_machine.move_to(cph(2026, 3, 14, 10, 0, 30), tick=False)
    for n in range(60):
        join(member_list, f"m{n}@example.net", birthdate="1990-03-14")
    time_machine.move_to(cph(2026, 3, 14, 10, 1), tick=False)
    start = threading.Barrier(4)
    results: list[dict[int, int]] = []

    def evaluate() -> None:
        try:
            start.wait()
            for _round in range(3):
                results.append(autoresponders_evaluate())
        finally:
            connection.close()

    threads = [threading.Thread(target=evaluate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == 12
    assert sum(r.get(ar.pk, 0) for r in results) == 60
    assert sum(r.get(birthday.pk, 0) for r in results) == 60
    assert Delivery.objects.filter(campaign__autoresponder_step__autoresponder=ar).count() == 60
    assert len(set(rows(birthday))) == len(rows(birthday)) == 60
