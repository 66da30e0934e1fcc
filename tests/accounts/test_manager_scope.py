"""What an account manager sees of an ask-first account's people, and the audit of the
passwords staff give new users."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AccessGrant, Role
from accounts.selectors import users_visible_to
from accounts.services import user_create
from audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_a_manager_sees_the_users_of_an_ask_first_account_only_under_a_live_grant(personas):
    oscar = personas.account_b.manager  # manages B, which asks first
    assert oscar is not None
    assert personas.carol not in users_visible_to(staff=oscar)
    grant = AccessGrant.objects.create(
        account=personas.account_b, manager=oscar, expires_at=timezone.now() + timedelta(hours=1)
    )
    assert personas.carol in users_visible_to(staff=oscar)
    grant.revoked_at = timezone.now()
    grant.save(update_fields=["revoked_at"])
    assert personas.carol not in users_visible_to(staff=oscar)
    # Standing access (account A lets Mallory in): A's people, never B's.
    mallory_sees = set(users_visible_to(staff=personas.mallory))
    assert {personas.alice, personas.bob} <= mallory_sees
    assert personas.carol not in mallory_sees


def test_the_first_password_a_manager_gives_a_new_user_is_audited(personas):
    before = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
    dan = user_create(
        email="dan@a.test",
        role=Role.USER,
        account=personas.account_a,
        password="another-long-pass-phrase-9",
        created_by=personas.mallory,
    )
    event = AuditEvent.objects.get(seq__gt=before, action="auth.password_set")
    assert (event.actor_id, event.account_id, event.target_id) == (
        personas.mallory.pk,
        personas.account_a.pk,
        str(dan.pk),
    )
    assert event.extra == {"by_someone_else": True, "new_user": True}
    assert "another-long-pass-phrase-9" not in str(event.extra) + event.target_repr
