import re

import pytest
from playwright.sync_api import expect

from tests.conftest import Personas

pytestmark = pytest.mark.browser


def fill_and_submit(page, email: str, password: str) -> None:
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_alice_signs_in_and_sees_the_dashboard(page, live_server, live_personas: Personas):
    page.goto(f"{live_server.url}/")
    expect(page).to_have_url(re.compile(r"/signin/"))
    fill_and_submit(page, "alice@a.test", live_personas.password)
    expect(page.get_by_role("heading", name="Welcome, Alice")).to_be_visible()
    expect(page.get_by_text("Account A Bakery")).to_be_visible()


def test_six_failures_show_the_lockout_page(page, live_server, live_personas: Personas):
    page.goto(f"{live_server.url}/signin/")
    statuses = []
    page.on("response", lambda r: statuses.append(r.status) if "/signin/" in r.url else None)
    for attempt in range(6):
        if page.get_by_label("Email").count() == 0:
            page.goto(f"{live_server.url}/signin/")
        fill_and_submit(page, "alice@a.test", f"wrong-password-{attempt}")
        page.wait_for_load_state()
    expect(page.get_by_role("heading", name="Sign-in paused")).to_be_visible()
    expect(page.get_by_text("contact your account manager")).to_be_visible()
    assert 429 in statuses
