"""Sign-in-as (acceptance 5): staff work in a customer's dashboard on their behalf with a
banner the whole time; the session ends after 4 hours at most, after 30 minutes idle, or
when the grant is revoked or expires; start, every page and the end are logged."""

from __future__ import annotations

from datetime import timedelta

from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts import consent, tasks
from accounts.models import AccessGrant
from audit.models import AuditEvent
from tests.accounts.test_consent_support import events, last_event, oscar, signed_in
from tests.conftest import Personas

HOME = reverse("accounts:home")
END = reverse("accounts:acting_end")
BANNER = "on the customer's behalf"


def work_in(account_id: int) -> str:
    return reverse("admin:accounts_account_work_in", args=[account_id])


def start(client: Client, account_id: int) -> None:
    response = client.post(work_in(account_id))
    assert response.status_code == 302, response.content
    assert response["Location"] == HOME


def give_grant(personas: Personas, hours: int = 1) -> AccessGrant:
    now = timezone.now()
    return AccessGrant.objects.create(
        account=personas.account_b,
        manager=oscar(),
        created_at=now,
        expires_at=now + timedelta(hours=hours),
    )


def test_a_manager_works_in_the_dashboard_with_a_banner_and_every_page_logged(
    personas: Personas, time_machine
):
    time_machine.move_to("2026-03-02 09:00:00+01:00", tick=False)
    mallory = signed_in(personas.mallory)
    assert mallory.get(HOME).status_code == 302  # staff go to the admin panel …
    confirm = mallory.get(work_in(personas.account_a.pk))
    assert confirm.status_code == 200
    assert "13:00" in confirm.text  # … and are told when it ends
    start(mallory, personas.account_a.pk)
    started = last_event(action="impersonation.start")
    assert (started.account_id, started.actor_email, started.reason) == (
        personas.account_a.pk,
        "mallory@heyloyalty.test",
        "standing",
    )

    pages = [HOME, reverse("members:lists"), reverse("campaigns:list")]
    for url in pages:
        page = mallory.get(url)
        assert page.status_code == 200, url
        assert "You are working in Account A Bakery" in page.text
        assert BANNER in page.text
        assert "ends at 13:00" in page.text
        assert f'action="{END}"' in page.text  # the End now button
    logged = events("impersonation.page", actor_email="mallory@heyloyalty.test")
    assert [e.path for e in logged] == pages
    assert {e.account_id for e in logged} == {personas.account_a.pk}
    # The owner's pages stay closed.
    assert mallory.get(reverse("accounts:api_keys")).status_code == 403

    ended = mallory.post(END)
    assert ended.status_code == 302
    assert ended["Location"] == reverse("admin:accounts_account_changelist")
    end = last_event(action="impersonation.end")
    assert (end.reason, end.account_id) == ("ended", personas.account_a.pk)
    assert mallory.get(HOME).status_code == 302  # back to the admin panel
    # Start, one event per page, refused owner page, end: all on Alice's log.
    alice_log = {e.action for e in AuditEvent.objects.filter(account_id=personas.account_a.pk)}
    assert {"impersonation.start", "impersonation.page", "impersonation.end"} <= alice_log


def test_the_session_ends_after_four_hours_even_when_busy(personas: Personas, time_machine):
    time_machine.move_to("2026-03-02 09:00:00+01:00", tick=False)
    mallory = signed_in(personas.mallory)
    start(mallory, personas.account_a.pk)
    for _ in range(11):  # a request every 20 minutes: never idle
        time_machine.shift(timedelta(minutes=20))
        assert mallory.get(HOME).status_code == 200
    time_machine.shift(timedelta(minutes=19, seconds=59))  # 3:59:59 after the start
    assert BANNER in mallory.get(HOME).text
    time_machine.shift(timedelta(seconds=1))  # 4 hours
    over = mallory.get(HOME, follow=True)
    assert BANNER not in over.text
    assert "the time allowed is over" in over.text
    end = last_event(action="impersonation.end")
    assert (end.reason, end.actor_email, end.extra["minutes"]) == (
        "time_limit",
        "mallory@heyloyalty.test",
        240,
    )
    assert len(events("impersonation.end")) == 1
    assert mallory.get(HOME).status_code == 302


def test_the_session_ends_after_thirty_minutes_idle(personas: Personas, time_machine):
    time_machine.move_to("2026-03-02 09:00:00+01:00", tick=False)
    mallory = signed_in(personas.mallory)
    start(mallory, personas.account_a.pk)
    time_machine.shift(timedelta(minutes=29))
    assert mallory.get(HOME).status_code == 200
    time_machine.shift(timedelta(minutes=30))
    over = mallory.get(HOME, follow=True)
    assert "30 minutes without activity" in over.text
    assert last_event(action="impersonation.end").reason == "idle"


def test_a_grant_is_needed_and_the_session_ends_when_it_is_revoked(personas: Personas):
    manager = signed_in(oscar())
    refused = manager.post(work_in(personas.account_b.pk))
    assert refused.status_code == 403
    assert last_event(action="access.refused").account_id == personas.account_b.pk
    assert not events("impersonation.start")
    assert manager.get(HOME).status_code == 302

    grant = give_grant(personas, hours=8)
    start(manager, personas.account_b.pk)
    assert last_event(action="impersonation.start").grant_id == grant.pk
    page = manager.get(reverse("members:lists"))
    assert "You are working in Account B Bikes" in page.text
    assert last_event(action="impersonation.page").grant_id == grant.pk

    consent.access_grant_revoke(grant=grant, by=personas.carol)
    after = manager.get(reverse("members:lists"), follow=True)
    assert "the customer revoked your access" in after.text
    assert after.redirect_chain[-1][0] == reverse("admin:index")
    end = last_event(action="impersonation.end")
    assert (end.reason, end.grant_id) == ("revoked", grant.pk)


def test_the_session_ends_with_the_grant_and_the_banner_says_when(personas: Personas, time_machine):
    time_machine.move_to("2026-03-02 09:00:00+01:00", tick=False)
    give_grant(personas, hours=1)
    manager = signed_in(oscar())
    start(manager, personas.account_b.pk)
    assert "ends at 10:00" in manager.get(HOME).text  # the grant's end, before 4 hours
    for _ in range(2):  # busy, never idle
        time_machine.shift(timedelta(minutes=25))
        assert manager.get(HOME).status_code == 200
    time_machine.shift(timedelta(minutes=10))  # 10:00
    assert "your access expired" in manager.get(HOME, follow=True).text
    assert last_event(action="impersonation.end").reason == "expired"


def test_consent_withdrawn_mid_session_ends_it(personas: Personas):
    mallory = signed_in(personas.mallory)
    start(mallory, personas.account_a.pk)
    signed_in(personas.alice).post(reverse("accounts:access"), {"manager_access": "ask"})
    assert mallory.get(HOME).status_code == 302
    assert last_event(action="impersonation.end").reason == "access_withdrawn"


def test_a_manager_not_assigned_cannot_start(personas: Personas):
    mallory = signed_in(personas.mallory)
    assert mallory.get(work_in(personas.account_b.pk)).status_code == 403
    assert mallory.post(work_in(personas.account_b.pk)).status_code == 403
    refused = events("access.refused", account_id=personas.account_b.pk)
    assert [e.reason for e in refused] == ["not_assigned", "not_assigned"]
    assert mallory.get(HOME).status_code == 302
    assert not events("impersonation.start")


def test_a_main_admin_may_work_in_any_account_and_is_logged(personas: Personas):
    root = signed_in(personas.root)
    start(root, personas.account_b.pk)
    assert "You are working in Account B Bikes" in root.get(HOME).text
    assert last_event(action="impersonation.start").reason == "admin"
    # Moving to another account ends the first session.
    start(root, personas.account_a.pk)
    assert "You are working in Account A Bakery" in root.get(HOME).text
    end = last_event(action="impersonation.end")
    assert (end.reason, end.account_id) == ("replaced", personas.account_b.pk)


def test_signing_out_ends_the_session(personas: Personas):
    mallory = signed_in(personas.mallory)
    start(mallory, personas.account_a.pk)
    mallory.post(reverse("accounts:logout"))
    assert last_event(action="impersonation.end").reason == "signed_out"


def test_customers_see_no_banner_and_cannot_end_anything(personas: Personas):
    alice = signed_in(personas.alice)
    assert BANNER not in alice.get(HOME).text
    assert alice.post(END).status_code == 302
    assert alice.get(END).status_code == 405
    assert not events("impersonation.end")
    assert alice.post(work_in(personas.account_a.pk)).status_code == 302  # to the admin login
    assert not events("impersonation.start")


def test_a_session_whose_browser_never_returns_is_ended_and_logged_on_time(
    personas: Personas, time_machine
):
    time_machine.move_to("2026-03-02 09:00:00+01:00", tick=False)
    mallory = signed_in(personas.mallory)
    start(mallory, personas.account_a.pk)
    assert mallory.get(HOME).status_code == 200
    alice = signed_in(personas.alice)
    assert "Working in your account now" in alice.get(reverse("accounts:access")).text

    time_machine.shift(timedelta(minutes=29))
    assert tasks.close_acting_sessions.apply().get() == 0  # not idle yet
    time_machine.shift(timedelta(minutes=2))
    assert tasks.close_acting_sessions.apply().get() == 1
    assert tasks.close_acting_sessions.apply().get() == 0  # each session ends once
    end = last_event(action="impersonation.end")
    assert (end.reason, end.account_id, end.extra["minutes"]) == ("idle", personas.account_a.pk, 30)
    assert "Working in your account now" not in alice.get(reverse("accounts:access")).text
    # The browser that comes back later finds it over, and nothing is logged twice.
    assert mallory.get(HOME).status_code == 302
    assert len(events("impersonation.end")) == 1


def test_the_beat_job_ends_sessions_at_the_time_limit_and_on_revocation(
    personas: Personas, time_machine
):
    time_machine.move_to("2026-03-02 09:00:00+01:00", tick=False)
    grant = give_grant(personas, hours=8)
    start(signed_in(oscar()), personas.account_b.pk)
    consent.access_grant_revoke(grant=grant, by=personas.carol)
    assert tasks.close_acting_sessions.apply().get() == 1
    assert last_event(action="impersonation.end").reason == "revoked"

    mallory = signed_in(personas.mallory)
    start(mallory, personas.account_a.pk)
    for _ in range(11):  # a request every 20 minutes: busy, never idle
        time_machine.shift(timedelta(minutes=20))
        assert mallory.get(HOME).status_code == 200
    time_machine.shift(timedelta(minutes=20))  # 4 hours; the browser does not come back
    assert tasks.close_acting_sessions.apply().get() == 1
    end = last_event(action="impersonation.end")
    assert (end.reason, end.extra["minutes"]) == ("time_limit", 240)


def test_the_account_list_offers_what_each_staff_member_may_do(personas: Personas):
    changelist = reverse("admin:accounts_account_changelist")
    request_b = reverse("admin:accounts_account_request_access", args=[personas.account_b.pk])
    assert request_b in signed_in(oscar()).get(changelist).text
    give_grant(personas, hours=4)
    with_grant = signed_in(oscar()).get(changelist).text
    assert "Approved until" in with_grant
    assert work_in(personas.account_b.pk) in with_grant
    assert work_in(personas.account_a.pk) in signed_in(personas.mallory).get(changelist).text
    root = signed_in(personas.root).get(changelist).text
    assert work_in(personas.account_a.pk) in root and work_in(personas.account_b.pk) in root
