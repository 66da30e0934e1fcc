"""Carol approves her account manager's request and revokes the access again, in a real
browser, on the page "Access to your account" (with the confirmations)."""

import pytest
from playwright.sync_api import expect

from accounts.models import AccessGrant, AccessRequest, AccessRequestStatus, User
from tests.conftest import Personas

pytestmark = pytest.mark.browser


def test_the_owner_approves_and_then_revokes(page, live_server, live_personas: Personas):
    oscar = User.objects.get(email="oscar@heyloyalty.test")
    access_request = AccessRequest.objects.create(
        account=live_personas.account_b, manager=oscar, reason="Your bounces doubled", nonce="n"
    )
    page.goto(f"{live_server.url}/signin/")
    page.get_by_label("Email").fill("carol@b.test")
    page.get_by_label("Password").fill(live_personas.password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Access to your account").click()
    expect(page.get_by_role("heading", name="1 request waiting for your answer")).to_be_visible()
    expect(page.get_by_text("Your bounces doubled")).to_be_visible()

    # Saying no to the confirmation changes nothing.
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("heading", name="1 request waiting for your answer")).to_be_visible()
    assert AccessRequest.objects.get().status == AccessRequestStatus.PENDING

    page.get_by_label("For how long").select_option("8")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_text("has access until")).to_be_visible()
    grant = AccessGrant.objects.get(request=access_request)
    assert (grant.expires_at - grant.created_at).total_seconds() == 8 * 3600
    expect(page.get_by_text("No access given")).not_to_be_visible()

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Revoke").click()
    expect(page.get_by_text("Access revoked")).to_be_visible()
    expect(page.get_by_text("No access given")).to_be_visible()
    grant.refresh_from_db()
    assert grant.revoked_at is not None
    # The decisions are Carol's own, not staff access: the log of staff access stays empty
    # of them, and the keyboard reaches every control.
    expect(page.get_by_text("No access by our staff")).to_be_visible()
    page.get_by_role("button", name="Filter").focus()
    expect(page.get_by_role("button", name="Filter")).to_be_focused()
