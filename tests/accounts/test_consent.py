"""staff_access: the one check of who of our staff may work in an account, tested hard."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts import consent
from accounts.consent import staff_access
from accounts.models import AccessGrant, ManagerAccess
from tests.accounts.test_consent_support import events, oscar
from tests.conftest import Personas


def grant(personas: Personas, **fields) -> AccessGrant:
    values = {
        "account": personas.account_b,
        "manager": oscar(),
        "expires_at": timezone.now() + timedelta(hours=1),
        **fields,
    }
    return AccessGrant.objects.create(**values)


def test_a_main_admin_may_enter_every_account(personas: Personas):
    for account in (personas.account_a, personas.account_b):
        assert staff_access(personas.root, account) == consent.Access(True, None, "admin")


def test_an_assigned_manager_with_standing_access_may_enter(personas: Personas):
    assert staff_access(personas.mallory, personas.account_a) == consent.Access(
        True, None, "standing"
    )


def test_a_manager_not_assigned_is_refused_even_with_a_grant(personas: Personas):
    grant(personas, manager=personas.mallory)  # a grant cannot stand in for the assignment
    access = staff_access(personas.mallory, personas.account_b)
    assert (access.allowed, access.why) == (False, "not_assigned")
    assert staff_access(oscar(), personas.account_a).why == "not_assigned"


def test_an_ask_account_needs_a_live_grant(personas: Personas):
    assert staff_access(oscar(), personas.account_b) == consent.Access(False, None, "no_grant")
    live = grant(personas)
    assert staff_access(oscar(), personas.account_b) == consent.Access(True, live, "grant")


def test_an_expired_grant_opens_nothing(personas: Personas, time_machine):
    time_machine.move_to(timezone.now(), tick=False)
    grant(personas)
    time_machine.shift(timedelta(hours=1))
    access = staff_access(oscar(), personas.account_b)
    assert (access.allowed, access.why) == (False, "expired")


def test_a_revoked_grant_opens_nothing(personas: Personas):
    revoked = grant(personas)
    assert consent.access_grant_revoke(grant=revoked, by=personas.carol)
    access = staff_access(oscar(), personas.account_b)
    assert (access.allowed, access.why, access.grant) == (False, "revoked", None)


def test_the_longest_live_grant_is_the_one_used(personas: Personas):
    grant(personas)
    longer = grant(personas, expires_at=timezone.now() + timedelta(hours=8))
    assert staff_access(oscar(), personas.account_b).grant == longer


def test_customers_and_inactive_staff_are_refused(personas: Personas):
    assert staff_access(personas.alice, personas.account_a).why == "not_staff"
    personas.mallory.is_active = False
    personas.mallory.save()
    assert not staff_access(personas.mallory, personas.account_a).allowed


def test_a_grant_longer_than_24_hours_cannot_be_stored(personas: Personas):
    now = timezone.now()
    with pytest.raises(IntegrityError), transaction.atomic():
        grant(personas, created_at=now, expires_at=now + timedelta(hours=24, seconds=1))
    grant(personas, created_at=now, expires_at=now + timedelta(hours=24))


def test_the_consent_setting_change_is_logged_once(personas: Personas):
    account = personas.account_a
    assert consent.manager_access_set(account=account, value=ManagerAccess.ASK, by=personas.alice)
    assert not consent.manager_access_set(
        account=account, value=ManagerAccess.ASK, by=personas.alice
    )
    account.refresh_from_db()
    assert account.manager_access == ManagerAccess.ASK
    (event,) = events("consent.setting_changed")
    assert (event.account_id, event.actor_email) == (account.pk, "alice@a.test")
    assert (event.extra["from"], event.extra["to"]) == ("allowed", "ask")
    assert staff_access(personas.mallory, account).why == "no_grant"
