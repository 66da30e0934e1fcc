"""A list's growth: members subscribing and unsubscribing per day, and the list's size,
drawn as charts on the list's Growth tab and given by the API."""

from __future__ import annotations

import re
from datetime import date

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.services import apikey_create
from campaigns.stats import list_growth
from campaigns.unsubscribe import member_unsubscribe
from members import services
from members.models import List, Member
from tests.api.conftest import Api
from tests.conftest import Personas

# Noon in Copenhagen (account A's time zone), so a day's events stay on that day.
MONDAY = "2026-03-02 11:00:00+00:00"


@pytest.fixture
def alice(client: Client, personas: Personas) -> Client:
    client.force_login(personas.alice)
    return client


def join(member_list: List, email: str) -> Member:
    return services.member_create(member_list=member_list, values={"email": email})


def leave(member: Member) -> None:
    assert member_unsubscribe(member=member, campaign_id=None, source="page")


def growth_page(client: Client, member_list: List, **query: str | int):
    page = client.get(reverse("members:list_growth", args=[member_list.pk]), query)
    assert page.status_code == 200
    return page


def table_rows(page_text: str, chart: str) -> list[list[str]]:
    """The "Show the numbers" table of one chart: each row's cells, as text."""
    figure = re.search(rf'<figure class="chart" id="chart-{chart}">(.*?)</figure>', page_text, re.S)
    assert figure, f"no chart {chart}"
    body = re.search(r"<tbody>(.*?)</tbody>", figure.group(1), re.S)
    assert body
    return [
        re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row)
        for row in re.findall(r"<tr>(.*?)</tr>", body.group(1))
    ]


def stat(page_text: str, name: str) -> str:
    found = re.search(rf'data-stat="{name}">([^<]*)<', page_text)
    assert found
    return found.group(1)


@pytest.fixture
def week(personas: Personas, time_machine) -> List:
    """A list made a week ago: three joined on its first day, one more two days later,
    and one of the first three unsubscribed yesterday."""
    time_machine.move_to("2026-02-23 11:00:00+00:00", tick=False)
    news = services.list_create(account=personas.account_a, name="Nyheder")
    ann = join(news, "ann@example.dk")
    join(news, "bo@example.dk")
    join(news, "cy@example.dk")
    time_machine.move_to("2026-02-25 11:00:00+00:00", tick=False)
    join(news, "di@example.dk")
    time_machine.move_to("2026-03-01 11:00:00+00:00", tick=False)
    leave(ann)
    time_machine.move_to(MONDAY, tick=False)
    return news


def test_the_growth_page_draws_subscribes_unsubscribes_and_size_per_day(alice: Client, week):
    page = growth_page(alice, week)

    assert '<svg viewBox="0 0 720 240" role="img"' in page.text
    assert 'class="series series-size"' in page.text
    assert 'class="series series-subscribed"' in page.text
    assert 'class="series series-unsubscribed"' in page.text
    size = table_rows(page.text, "size")
    daily = table_rows(page.text, "joined")
    # From the list's first day to today: eight days, not ninety.
    assert len(size) == len(daily) == 8
    assert [row[1] for row in size] == ["3", "3", "4", "4", "4", "4", "3", "3"]
    assert [row[1:] for row in daily] == [
        ["3", "0"],
        ["0", "0"],
        ["1", "0"],
        ["0", "0"],
        ["0", "0"],
        ["0", "0"],
        ["0", "1"],
        ["0", "0"],
    ]
    assert (stat(page.text, "size"), stat(page.text, "subscribed")) == ("3", "4")
    assert stat(page.text, "unsubscribed") == "1"
    assert "From 02/23/2026 to 03/02/2026 the list went from 3 to 3 members." in page.text


def test_a_new_list_shows_an_empty_state_not_an_empty_chart(alice: Client, personas: Personas):
    empty = services.list_create(account=personas.account_a, name="Tom liste")

    page = growth_page(alice, empty)

    assert "No members to show yet" in page.text
    assert "<svg" not in page.text
    assert reverse("members:import_start", args=[empty.pk]) in page.text


def test_the_list_page_links_to_its_growth(alice: Client, week):
    page = alice.get(reverse("members:list_detail", args=[week.pk]))

    assert f'href="{reverse("members:list_growth", args=[week.pk])}"' in page.text


def test_the_period_can_be_chosen_and_a_bad_one_is_a_form_error(alice: Client, week, time_machine):
    time_machine.move_to("2026-06-01 11:00:00+00:00", tick=False)

    month = growth_page(alice, week, days=30)
    assert len(table_rows(month.text, "size")) == 30
    assert table_rows(month.text, "size")[0][1] == "3"  # the list's size before the period
    assert stat(month.text, "subscribed") == "0"

    bad = growth_page(alice, week, days="forever")
    assert 'role="alert"' in bad.text
    assert "The last 90 days are shown instead." in bad.text
    assert len(table_rows(bad.text, "size")) == 90


def test_the_page_speaks_danish(personas: Personas, week):
    client = Client(HTTP_ACCEPT_LANGUAGE="da")
    client.force_login(personas.alice)

    page = growth_page(client, week)

    assert "Vækst" in page.text
    assert "Tilmeldt og afmeldt, pr. dag" in page.text


def test_the_size_is_members_added_less_those_who_unsubscribed(personas: Personas, week):
    gone = join(week, "gone@example.dk")
    leave(gone)
    services.member_delete(member=gone)  # its join and its unsubscribe are both gone
    eve = join(week, "eve@example.dk")
    leave(eve)

    today = list_growth(member_list=week, days=1)

    assert [(g.day, g.subscribed, g.unsubscribed, g.size) for g in today] == [
        (date(2026, 3, 2), 1, 2, 3)
    ]


def test_the_cost_does_not_grow_with_the_list(alice: Client, week):
    with CaptureQueriesContext(connection) as few:
        growth_page(alice, week)
    services.members_add(
        member_list=week,
        members=[services.MemberData(email=f"m{i}@example.dk") for i in range(500)],
    )
    with CaptureQueriesContext(connection) as many:
        page = growth_page(alice, week)

    assert len(many.captured_queries) == len(few.captured_queries)
    growth_reads = [q["sql"] for q in many.captured_queries if "GROUP BY" in q["sql"]]
    assert len(growth_reads) == 2  # one per table, whatever the list's size
    assert stat(page.text, "size") == "503"


def test_the_api_gives_the_same_numbers(personas: Personas, week):
    key, secret = apikey_create(account=personas.account_a, name="shop")

    answer = Api(key.key, secret).get(f"lists/{week.pk}/statistics", query={"days": 3})

    assert answer.json()["days"] == [
        {"date": "2026-02-28", "subscribed": 0, "unsubscribed": 0, "size": 4},
        {"date": "2026-03-01", "subscribed": 0, "unsubscribed": 1, "size": 3},
        {"date": "2026-03-02", "subscribed": 0, "unsubscribed": 0, "size": 3},
    ]


def test_days_follow_the_accounts_time_zone(personas: Personas, time_machine):
    time_machine.move_to("2026-03-01 23:30:00+00:00", tick=False)  # 00:30 on the 2nd in Copenhagen
    news = services.list_create(account=personas.account_a, name="Nat")
    join(news, "night@example.dk")

    (today,) = list_growth(member_list=news, days=1)

    assert (today.day, today.subscribed) == (date(2026, 3, 2), 1)
    assert Member.objects.get().created_at.date() == date(2026, 3, 1)  # UTC
