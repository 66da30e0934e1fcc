"""Incidents opened by a main admin (also planned maintenance): the banner on every
dashboard page while open, the status page with monthly availability."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from monitoring import selectors, services
from monitoring.models import Incident, IncidentKind

pytestmark = pytest.mark.django_db


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Incident changes reach the status store after commit; the test's transaction
    never commits, so ``with committed():`` runs those callbacks at its end."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


ADD = "/admin/monitoring/incident/add/"
BANNER = 'class="incident-banner"'


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def local(text: str) -> str:
    return timezone.localtime(datetime.fromisoformat(text)).strftime("%Y-%m-%d %H:%M:%S")


def test_a_main_admin_opens_an_incident_and_every_customer_sees_the_banner(personas, committed):
    root = signed_in(personas.root)
    now = timezone.localtime()
    with committed():
        response = root.post(
            ADD,
            {
                "title": "Mail delays at our provider",
                "kind": IncidentKind.DEGRADED,
                "message": "Campaigns go out slowly today.",
                "started_at_0": now.strftime("%Y-%m-%d"),
                "started_at_1": now.strftime("%H:%M:%S"),
            },
        )
    assert response.status_code == 302, response.text

    incident = Incident.objects.get()
    assert incident.created_by == personas.root
    for user in (personas.alice, personas.bob, personas.carol):
        for path in ("/", "/lists/", "/campaigns/"):
            page = signed_in(user).get(path).text
            assert BANNER in page, (user, path)
            assert "Campaigns go out slowly today." in page


def test_resolving_it_removes_the_banner(personas, committed):
    with committed():
        incident = services.incident_open(
            title="Outage", kind=IncidentKind.OUTAGE, by=personas.root
        )
    alice = signed_in(personas.alice)
    assert BANNER in alice.get("/").text

    with committed():
        response = signed_in(personas.root).post(
            "/admin/monitoring/incident/",
            {"action": "resolve", "_selected_action": [incident.pk]},
        )

    assert response.status_code == 302
    incident.refresh_from_db()
    assert incident.resolved_at is not None and incident.resolved_by == personas.root
    assert BANNER not in alice.get("/").text


def test_the_banner_reads_no_database(personas, django_assert_num_queries, committed):
    alice = signed_in(personas.alice)
    alice.get("/")
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as quiet:
        alice.get("/")
    with committed():
        services.incident_open(title="Outage", kind=IncidentKind.OUTAGE, by=personas.root)
    with django_assert_num_queries(len(quiet.captured_queries)):
        page = alice.get("/").text
    assert BANNER in page


def test_planned_maintenance_is_announced_a_week_ahead(personas, time_machine, committed):
    time_machine.move_to(timezone.now(), tick=False)
    start = timezone.now() + timedelta(days=3)
    with committed():
        services.incident_open(
            title="Database upgrade",
            kind=IncidentKind.MAINTENANCE,
            message="The dashboard is read-only for an hour.",
            started_at=start,
            ends_at=start + timedelta(hours=1),
            by=personas.root,
        )
        services.incident_open(
            title="Far away",
            kind=IncidentKind.MAINTENANCE,
            started_at=timezone.now() + timedelta(days=20),
            by=personas.root,
        )
    alice = signed_in(personas.alice)

    page = alice.get("/").text
    assert "Planned maintenance" in page
    assert "The dashboard is read-only for an hour." in page
    assert page.count('class="incident-notice') == 1

    time_machine.shift(timedelta(days=3, hours=2))  # over: its expected end has passed
    assert BANNER not in alice.get("/").text


def test_the_banner_speaks_danish(personas, committed):
    with committed():
        services.incident_open(title="x", kind=IncidentKind.MAINTENANCE, by=personas.root)
    alice = signed_in(personas.alice)
    alice.cookies["django_language"] = "da"

    page = alice.get("/").text

    assert "Planlagt vedligeholdelse" in page


def test_only_main_admins_open_incidents(personas):
    assert signed_in(personas.mallory).get(ADD).status_code == 403
    assert signed_in(personas.alice).get(ADD).status_code == 302  # to the admin sign-in
    assert signed_in(personas.root).get(ADD).status_code == 200


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"title": "", "kind": "outage"}, "title"),
        ({"title": "x", "kind": "asteroid"}, "kind"),
        (
            {"title": "x", "kind": "outage", "ends_at_0": "2020-01-01", "ends_at_1": "00:00"},
            "ends_at",
        ),
    ],
)
def test_a_bad_incident_is_a_form_error(personas, data, field):
    now = timezone.localtime()
    form = {"started_at_0": now.strftime("%Y-%m-%d"), "started_at_1": now.strftime("%H:%M:%S")}
    response = signed_in(personas.root).post(ADD, {**form, **data})

    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert not Incident.objects.exists()


def test_the_service_refuses_an_end_before_the_start(personas):
    with pytest.raises(services.IncidentError) as error:
        services.incident_open(
            title="x",
            kind=IncidentKind.OUTAGE,
            by=personas.root,
            ends_at=timezone.now() - timedelta(hours=1),
        )
    assert error.value.field == "ends_at"


def test_the_status_page_shows_availability_and_history(personas, time_machine):
    time_machine.move_to("2026-03-20T12:00:00+01:00", tick=False)
    march = timezone.make_aware(datetime(2026, 3, 10, 10, 0))
    Incident.objects.create(
        key="a", source="watchdog", kind=IncidentKind.OUTAGE, title="Failing: database",
        started_at=march, resolved_at=march + timedelta(minutes=30),
    )  # fmt: skip
    Incident.objects.create(
        key="b", source="admin", kind=IncidentKind.OUTAGE, title="Overlapping",
        started_at=march + timedelta(minutes=20), resolved_at=march + timedelta(minutes=40),
    )  # fmt: skip
    Incident.objects.create(
        key="c", source="admin", kind=IncidentKind.MAINTENANCE, title="Upgrade",
        started_at=march + timedelta(days=1), resolved_at=march + timedelta(days=1, hours=2),
    )  # fmt: skip

    months = selectors.monthly_availability()

    assert len(months) == 12
    current = months[0]
    assert current.month.isoformat() == "2026-03-01"
    assert current.outage_seconds == 40 * 60  # two overlapping incidents, merged
    assert current.maintenance_seconds == 2 * 3600
    month_so_far = 19 * 86400 + 12 * 3600
    assert current.availability == pytest.approx(100 * (1 - 2400 / (month_so_far - 7200)))
    assert months[1].availability == 100.0

    page = signed_in(personas.carol).get("/status/").text
    assert "Availability per month" in page
    assert "Failing: database" in page and "Upgrade" in page
    assert f"{current.availability:.3f} %" in page


def test_the_status_page_has_an_empty_state_and_needs_a_sign_in(personas):
    assert Client().get("/status/").status_code == 302
    page = signed_in(personas.alice).get("/status/").text
    assert "No incidents so far" in page
    assert "Everything is working." in page
