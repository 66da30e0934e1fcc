"""Each trigger fires exactly once per member, step and occurrence: time is moved, the
evaluation runs again (twice in the same minute, and on later minutes), and the rows it
wrote are counted."""

from __future__ import annotations

import io

import pytest
from django.db import connection

from campaigns.autoresponder_triggers import autoresponders_evaluate
from campaigns.autoresponders import (
    autoresponder_activate,
    autoresponder_deactivate,
    autoresponder_update,
)
from campaigns.models import Campaign, CampaignTarget, Delivery
from campaigns.models_autoresponders import FieldChange
from campaigns.unsubscribe import member_unsubscribe
from members import services as member_services
from members.imports import ImportOptions, import_create, import_run
from members.models import Member, MemberStatus
from members.optin import optin_confirm, optin_token
from tests.campaigns.test_autoresponders_support import (
    club,
    cph,
    join,
    make_autoresponder,
    rows,
    step_rows,
)

__all__ = ["club"]  # a fixture


def evaluate_twice() -> int:
    """The minute's evaluation, run twice as a slow beat might: the second writes nothing."""
    first = sum(autoresponders_evaluate().values())
    assert sum(autoresponders_evaluate().values()) == 0
    return first


# -- subscribed ---------------------------------------------------------------------------


def test_a_new_member_gets_the_welcome_mail_once(club, time_machine):
    time_machine.move_to(cph(2026, 3, 2, 10, 0), tick=False)
    join(club, "before@example.net")
    ar = make_autoresponder(club, trigger="subscribed")
    time_machine.move_to(cph(2026, 3, 2, 10, 0, 30), tick=False)
    ann = join(club, "ann@example.net", firstname="Ann")

    time_machine.move_to(cph(2026, 3, 2, 10, 1), tick=False)
    assert evaluate_twice() == 1
    for minute in (2, 3, 20, 45):
        time_machine.move_to(cph(2026, 3, 2, 10, minute), tick=False)
        assert evaluate_twice() == 0
    assert rows(ar) == [(1, "ann@example.net", str(ann.pk))]
    delivery = step_rows(ar)[0]
    assert delivery.member_id == ann.pk
    assert delivery.status == "queued"
    assert delivery.next_attempt_at == cph(2026, 3, 2, 10, 0, 30)  # no delay, no window


def test_a_member_who_joins_while_it_is_off_gets_nothing(club, time_machine):
    time_machine.move_to(cph(2026, 3, 2, 10, 0), tick=False)
    ar = make_autoresponder(club, trigger="subscribed")
    autoresponder_deactivate(autoresponder=ar)
    time_machine.move_to(cph(2026, 3, 2, 10, 5), tick=False)
    join(club, "off@example.net")
    assert evaluate_twice() == 0
    time_machine.move_to(cph(2026, 3, 2, 10, 6), tick=False)
    autoresponder_activate(autoresponder=ar)
    time_machine.move_to(cph(2026, 3, 2, 10, 7), tick=False)
    join(club, "on@example.net")
    time_machine.move_to(cph(2026, 3, 2, 10, 8), tick=False)
    assert evaluate_twice() == 1
    assert [email for _, email, _ in rows(ar)] == ["on@example.net"]


def test_an_unconfirmed_member_gets_it_when_confirming(club, time_machine):
    club.double_optin = True
    club.save()
    time_machine.move_to(cph(2026, 3, 2, 10, 0), tick=False)
    ar = make_autoresponder(club, trigger="subscribed")
    member = join(club, "optin@example.net")
    assert not ar.steps.get().campaign.deliveries.exists()
    assert member.status == MemberStatus.UNCONFIRMED
    time_machine.move_to(cph(2026, 3, 2, 10, 1), tick=False)
    assert evaluate_twice() == 0
    time_machine.move_to(cph(2026, 3, 4, 18, 0), tick=False)  # two days later
    optin_confirm(token=optin_token(member))
    time_machine.move_to(cph(2026, 3, 4, 18, 1), tick=False)
    assert evaluate_twice() == 1
    time_machine.move_to(cph(2026, 3, 4, 18, 2), tick=False)
    assert evaluate_twice() == 0


@pytest.fixture
def import_dir(settings, tmp_path):
    settings.IMPORT_DIR = tmp_path / "imports"


def _import(member_list, content: bytes, **options) -> None:
    job = import_create(
        member_list=member_list, upload=io.BytesIO(content), options=ImportOptions(**options)
    )
    import_run(import_id=job.pk)
    job.refresh_from_db()
    assert job.status == "done", job.failure


def test_imported_members_count_only_when_the_import_asks(club, time_machine, import_dir):
    time_machine.move_to(cph(2026, 3, 2, 10, 0), tick=False)
    ar = make_autoresponder(club, trigger="subscribed")
    time_machine.move_to(cph(2026, 3, 2, 10, 0, 10), tick=False)
    _import(club, b"email\nquiet1@example.net\nquiet2@example.net\n")
    time_machine.move_to(cph(2026, 3, 2, 10, 0, 20), tick=False)
    _import(club, b"email\nloud1@example.net\nloud2@example.net\n", trigger_autoresponder=True)
    time_machine.move_to(cph(2026, 3, 2, 10, 1), tick=False)
    assert evaluate_twice() == 2
    assert [email for _, email, _ in rows(ar)] == ["loud1@example.net", "loud2@example.net"]


# -- unsubscribed -------------------------------------------------------------------------


def test_leaving_the_list_fires_once_per_unsubscribe(club, time_machine):
    time_machine.move_to(cph(2026, 3, 2, 10, 0), tick=False)
    bo = join(club, "bo@example.net")
    ar = make_autoresponder(club, trigger="unsubscribed", name="Goodbye")
    time_machine.move_to(cph(2026, 3, 2, 10, 1), tick=False)
    assert member_unsubscribe(member=bo, campaign_id=None, source="page")
    assert not member_unsubscribe(member=bo, campaign_id=None, source="page")  # no change
    time_machine.move_to(cph(2026, 3, 2, 10, 2), tick=False)
    assert evaluate_twice() == 1
    time_machine.move_to(cph(2026, 3, 2, 10, 3), tick=False)
    assert evaluate_twice() == 0
    [(_, email, occurrence)] = rows(ar)
    assert email == "bo@example.net" and occurrence.startswith("unsubscribed:")


# -- a date field -------------------------------------------------------------------------


def test_a_birthday_mail_goes_once_this_year_and_again_next_year(club, time_machine):
    time_machine.move_to(cph(2026, 3, 1, 12, 0), tick=False)
    ann = join(club, "ann@example.net", birthdate="1990-03-14")
    join(club, "bo@example.net", birthdate="1985-03-15")
    ar = make_autoresponder(club, trigger="date", field_name="birthdate", yearly=True)

    time_machine.move_to(cph(2026, 3, 13, 23, 59), tick=False)
    assert evaluate_twice() == 0
    time_machine.move_to(cph(2026, 3, 14, 0, 0, 30), tick=False)  # just after midnight there
    assert evaluate_twice() == 1
    for moment in (cph(2026, 3, 14, 0, 1), cph(2026, 3, 14, 13, 0), cph(2026, 3, 14, 23, 59)):
        time_machine.move_to(moment, tick=False)
        assert evaluate_twice() == 0
    time_machine.move_to(cph(2026, 3, 15, 0, 1), tick=False)
    assert evaluate_twice() == 1  # Bo's
    time_machine.move_to(cph(2027, 3, 14, 0, 1), tick=False)
    assert evaluate_twice() == 1
    assert rows(ar) == [
        (1, "ann@example.net", "2026"),
        (1, "ann@example.net", "2027"),
        (1, "bo@example.net", "2026"),
    ]
    assert {d.member_id for d in step_rows(ar) if d.email == "ann@example.net"} == {ann.pk}


def test_a_leap_day_birthday_is_celebrated_on_28_february_in_other_years(club, time_machine):
    time_machine.move_to(cph(2026, 1, 1, 12, 0), tick=False)
    join(club, "leap@example.net", birthdate="2000-02-29")
    join(club, "feb28@example.net", birthdate="1999-02-28")
    ar = make_autoresponder(club, trigger="date", field_name="birthdate", yearly=True)
    for day in ((2027, 2, 28), (2027, 3, 1), (2028, 2, 28), (2028, 2, 29), (2028, 3, 1)):
        time_machine.move_to(cph(*day, 8, 0), tick=False)
        autoresponders_evaluate()
        autoresponders_evaluate()
    assert rows(ar) == [
        (1, "feb28@example.net", "2027"),
        (1, "feb28@example.net", "2028"),
        (1, "leap@example.net", "2027"),
        (1, "leap@example.net", "2028"),
    ]
    leap = {d.occurrence: d.next_attempt_at for d in step_rows(ar) if d.email.startswith("leap")}
    assert leap == {"2027": cph(2027, 2, 28, 8, 0), "2028": cph(2028, 2, 29, 8, 0)}


def test_empty_and_odd_date_values_match_nothing_and_break_nothing(club, time_machine):
    time_machine.move_to(cph(2026, 3, 1, 12, 0), tick=False)
    join(club, "none@example.net")
    join(club, "ok@example.net", birthdate="1990-03-14")
    odd = join(club, "odd@example.net")
    # Values no service would write, as an old import or a hand might have left them.
    for value in ("", "14-03-1990", "not a date", "1990-03", 19900314, None, ["1990-03-14"]):
        Member.objects.filter(pk=odd.pk).update(data={"birthdate": value})
        ar = make_autoresponder(club, trigger="date", field_name="birthdate", yearly=True)
        time_machine.move_to(cph(2026, 3, 14, 9, 0), tick=False)
        autoresponders_evaluate()
        assert [email for _, email, _ in rows(ar)] == ["ok@example.net"], value
        autoresponder_deactivate(autoresponder=ar)
        time_machine.move_to(cph(2026, 3, 1, 12, 0), tick=False)
    non_yearly = make_autoresponder(club, trigger="date", field_name="renewal", days=3)
    time_machine.move_to(cph(2026, 3, 14, 9, 0), tick=False)
    assert autoresponders_evaluate() == {non_yearly.pk: 0}


def test_days_before_and_after_a_date_that_does_not_repeat(club, time_machine):
    time_machine.move_to(cph(2026, 5, 1, 12, 0), tick=False)
    join(club, "renew@example.net", renewal="2026-05-10")
    before = make_autoresponder(
        club, trigger="date", field_name="renewal", date_direction="before", days=3
    )
    on = make_autoresponder(club, trigger="date", field_name="renewal", date_direction="on")
    after = make_autoresponder(
        club, trigger="date", field_name="renewal", date_direction="after", days=2
    )
    fired = {}
    for day in range(5, 16):
        time_machine.move_to(cph(2026, 5, day, 7, 0), tick=False)
        for pk, count in autoresponders_evaluate().items():
            if count:
                fired[pk] = (day, count)
        autoresponders_evaluate()
    assert fired == {before.pk: (7, 1), on.pk: (10, 1), after.pk: (12, 1)}
    assert rows(after) == [(1, "renew@example.net", "2026-05-10")]
    time_machine.move_to(cph(2027, 5, 7, 7, 0), tick=False)
    assert sum(autoresponders_evaluate().values()) == 0  # not yearly


# -- a field changed ----------------------------------------------------------------------


def test_a_field_changing_to_a_value_fires_on_each_change_to_it(club, time_machine):
    time_machine.move_to(cph(2026, 3, 2, 10, 0), tick=False)
    ann = join(club, "ann@example.net", level="silver")
    ar = make_autoresponder(
        club, trigger="field_changed", field_name="level", change="value", field_value="gold"
    )
    update = member_services.member_update
    time_machine.move_to(cph(2026, 3, 2, 10, 1), tick=False)
    update(member=ann, values={"level": "gold"}, replace=False)
    update(member=ann, values={"level": "gold", "firstname": "Ann"}, replace=False)  # no change
    time_machine.move_to(cph(2026, 3, 2, 10, 2), tick=False)
    assert evaluate_twice() == 1
    time_machine.move_to(cph(2026, 3, 3, 10, 0), tick=False)
    update(member=ann, values={"level": "silver"}, replace=False)
    time_machine.move_to(cph(2026, 3, 3, 10, 1), tick=False)
    assert evaluate_twice() == 0
    update(member=ann, values={"level": "gold"}, replace=False)
    time_machine.move_to(cph(2026, 3, 3, 10, 2), tick=False)
    assert evaluate_twice() == 1
    assert len(rows(ar)) == 2


def test_a_number_crossing_a_threshold_fires_when_it_rises_past_it(club, time_machine):
    time_machine.move_to(cph(2026, 3, 2, 10, 0), tick=False)
    ann = join(club, "ann@example.net", points=50)
    bo = join(club, "bo@example.net")
    ar = make_autoresponder(
        club, trigger="field_changed", field_name="points", change="above", threshold="100"
    )
    down = make_autoresponder(
        club, trigger="field_changed", field_name="points", change="below", threshold=100
    )
    update = member_services.member_update
    for minute, member, points in (
        (1, ann, 99),  # still below
        (2, ann, 100),  # reached: fires
        (3, ann, 150),  # still above
        (4, bo, 120),  # from empty to above: fires
        (5, ann, 20),  # fell below: fires the other
        (6, ann, 130),  # above again: fires again
    ):
        time_machine.move_to(cph(2026, 3, 2, 10, minute), tick=False)
        update(member=member, values={"points": points}, replace=False)
        time_machine.move_to(cph(2026, 3, 2, 10, minute, 30), tick=False)
        evaluate_twice()
    assert [(email) for _, email, _ in rows(ar)] == [
        "ann@example.net",
        "ann@example.net",
        "bo@example.net",
    ]
    assert [email for _, email, _ in rows(down)] == ["ann@example.net"]


def test_an_import_that_changes_a_watched_field_fires_too(club, time_machine, import_dir):
    time_machine.move_to(cph(2026, 3, 2, 10, 0), tick=False)
    join(club, "ann@example.net", level="silver")
    join(club, "bo@example.net", level="gold")
    ar = make_autoresponder(
        club, trigger="field_changed", field_name="level", change="value", field_value="gold"
    )
    time_machine.move_to(cph(2026, 3, 2, 10, 0, 30), tick=False)
    _import(club, b"email,level\nann@example.net,gold\nbo@example.net,gold\ncy@example.net,gold\n")
    time_machine.move_to(cph(2026, 3, 2, 10, 1), tick=False)
    assert evaluate_twice() == 1
    assert [email for _, email, _ in rows(ar)] == ["ann@example.net"]


def test_only_watched_fields_are_recorded_and_old_records_go(club, time_machine):
    time_machine.move_to(cph(2026, 3, 2, 10, 0), tick=False)
    ann = join(club, "ann@example.net", level="silver", points=1)
    member_services.member_update(member=ann, values={"level": "gold"}, replace=False)
    assert not FieldChange.objects.exists()  # nothing watches the list
    make_autoresponder(
        club, trigger="field_changed", field_name="level", change="value", field_value="x"
    )
    member_services.member_update(member=ann, values={"level": "x", "points": 2}, replace=False)
    assert list(FieldChange.objects.values_list("field", "old", "new")) == [("level", "gold", "x")]
    time_machine.move_to(cph(2026, 3, 3, 10, 1), tick=False)
    autoresponders_evaluate()
    assert not FieldChange.objects.exists()


# -- opened, clicked, did not open ---------------------------------------------------------


def _sent_campaign(club, *members, sent_at):
    campaign = Campaign.objects.create(
        account=club.account, name="Spring", subject="S", html="<p>x</p>", status="sent"
    )
    CampaignTarget.objects.create(campaign=campaign, list=club)
    deliveries = [
        Delivery.objects.create(
            campaign=campaign, member=m, email=m.email, status="sent", sent_at=sent_at
        )
        for m in members
    ]
    Campaign.objects.filter(pk=campaign.pk).update(started_at=sent_at, finished_at=sent_at)
    return campaign, deliveries


def _event(delivery, kind, at, machine=False):
    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO campaigns_trackingevent
                   (event_id, delivery_id, campaign_id, member_id, kind, machine, user_agent,
                    created_at)
               VALUES (gen_random_uuid(), %s, %s, %s, %s, %s, '', %s)""",
            [delivery.pk, delivery.campaign_id, str(delivery.member_id), kind, machine, at],
        )
        if not machine:
            cursor.execute(
                """INSERT INTO campaigns_deliveryactivity (delivery_id, opened_at, positions)
                   VALUES (%s, %s, '{}') ON CONFLICT (delivery_id) DO NOTHING""",
                [delivery.pk, at],
            )


def test_opening_or_clicking_a_campaign_fires_once_per_member(club, time_machine):
    time_machine.move_to(cph(2026, 3, 2, 10, 0), tick=False)
    ann, bo, cy = (join(club, f"{n}@example.net") for n in ("ann", "bo", "cy"))
    campaign, (d_ann, d_bo, d_cy) = _sent_campaign(club, ann, bo, cy, sent_at=cph(2026, 3, 2, 9))
    opened = make_autoresponder(club, trigger="opened", trigger_campaign_id=campaign.pk)
    clicked = make_autoresponder(club, trigger="clicked", trigger_campaign_id=campaign.pk)
    _event(d_ann, "open", cph(2026, 3, 2, 10, 0, 10))
    _event(d_ann, "open", cph(2026, 3, 2, 10, 0, 20))  # again: the same occurrence
    _event(d_bo, "click", cph(2026, 3, 2, 10, 0, 30))  # a click is an open too
    _event(d_cy, "open", cph(2026, 3, 2, 10, 0, 40), machine=True)  # a privacy proxy
    _event(d_cy, "click", cph(2026, 3, 2, 10, 0, 41), machine=True)  # a link scanner
    time_machine.move_to(cph(2026, 3, 2, 10, 1), tick=False)
    assert evaluate_twice() == 3
    _event(d_bo, "open", cph(2026, 3, 2, 10, 1, 10))
    time_machine.move_to(cph(2026, 3, 2, 10, 2), tick=False)
    assert evaluate_twice() == 0
    assert [email for _, email, _ in rows(opened)] == ["ann@example.net", "bo@example.net"]
    assert rows(clicked) == [(1, "bo@example.net", f"clicked:{campaign.pk}")]


def test_not_opening_a_campaign_within_days_fires_once_when_the_days_are_up(club, time_machine):
    time_machine.move_to(cph(2026, 3, 2, 10, 0), tick=False)
    ann, bo = join(club, "ann@example.net"), join(club, "bo@example.net")
    campaign, (d_ann, _) = _sent_campaign(club, ann, bo, sent_at=cph(2026, 3, 2, 10, 0))
    ar = make_autoresponder(club, trigger="not_opened", trigger_campaign_id=campaign.pk, days=3)
    _event(d_ann, "open", cph(2026, 3, 3, 8, 0))
    time_machine.move_to(cph(2026, 3, 5, 9, 59), tick=False)
    assert evaluate_twice() == 0
    time_machine.move_to(cph(2026, 3, 5, 10, 1), tick=False)
    assert evaluate_twice() == 1
    for moment in (cph(2026, 3, 5, 10, 2), cph(2026, 3, 9, 10, 0)):
        time_machine.move_to(moment, tick=False)
        assert evaluate_twice() == 0
    assert rows(ar) == [(1, "bo@example.net", f"not_opened:{campaign.pk}")]


def test_a_birthday_entered_joined_or_confirmed_later_that_day_is_still_celebrated(
    club, time_machine
):
    time_machine.move_to(cph(2026, 3, 1, 12, 0), tick=False)
    ann = join(club, "ann@example.net")
    ar = make_autoresponder(club, trigger="date", field_name="birthdate", yearly=True)
    time_machine.move_to(cph(2026, 3, 14, 0, 1), tick=False)
    assert evaluate_twice() == 0  # the whole list looked at: nobody's birthday yet
    ar.refresh_from_db()
    assert ar.date_checked == cph(2026, 3, 14).date()

    time_machine.move_to(cph(2026, 3, 14, 9, 0), tick=False)
    member_services.member_update(member=ann, values={"birthdate": "1990-03-14"}, replace=False)
    join(club, "bo@example.net", birthdate="1991-03-14")
    club.double_optin = True
    club.save()
    cy = join(club, "cy@example.net", birthdate="1992-03-14")
    time_machine.move_to(cph(2026, 3, 14, 9, 1), tick=False)
    assert evaluate_twice() == 2  # Ann and Bo; Cy has not confirmed
    time_machine.move_to(cph(2026, 3, 14, 15, 0), tick=False)
    optin_confirm(token=optin_token(cy))
    time_machine.move_to(cph(2026, 3, 14, 15, 1), tick=False)
    assert evaluate_twice() == 1
    assert [email for _, email, _ in rows(ar)] == [
        "ann@example.net",
        "bo@example.net",
        "cy@example.net",
    ]


def test_changing_a_date_triggers_settings_looks_at_the_whole_list_again(club, time_machine):
    time_machine.move_to(cph(2026, 3, 1, 12, 0), tick=False)
    join(club, "ann@example.net", renewal="2026-03-14")
    ar = make_autoresponder(club, trigger="date", field_name="birthdate")
    time_machine.move_to(cph(2026, 3, 14, 8, 0), tick=False)
    assert evaluate_twice() == 0
    autoresponder_update(autoresponder=ar, field_name="renewal")
    time_machine.move_to(cph(2026, 3, 14, 8, 1), tick=False)
    assert evaluate_twice() == 1
