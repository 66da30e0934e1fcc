"""What the API's fast path keeps: revocation, signatures, rate limits, last use, fields."""

import secrets
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from accounts.models import ApiKey
from accounts.services import apikey_revoke
from heyloyalty.api import auth
from members import schema, services
from members.fields import FieldSpec
from members.models import Field, Member
from tests.api.conftest import Api


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(auth, "_clock", fake)
    return fake


@pytest.fixture
def a_fresh_minute(time_machine) -> None:
    """Redis outlives test runs and key ids repeat across test databases: go to a minute
    that no other run's rate counters use."""
    start = timezone.now() + timedelta(days=secrets.randbelow(10**6))
    time_machine.move_to(start.replace(second=1), tick=False)


def test_a_revoked_key_stops_working_within_the_key_cache_time(alice_api: Api, clock):
    assert alice_api.get("lists").status_code == 200
    apikey_revoke(api_key=ApiKey.objects.get(key=alice_api.key))
    clock.now += auth.KEY_CACHE_SECONDS + 0.1
    assert alice_api.get("lists").status_code == 401


def test_a_known_key_still_needs_the_right_signature(alice_api: Api, clock):
    assert alice_api.get("lists").status_code == 200
    assert Api(alice_api.key, "not-the-secret").get("lists").status_code == 401


def test_last_use_is_written_at_most_once_a_minute(alice_api: Api, time_machine):
    def last_used() -> datetime | None:
        return ApiKey.objects.get(key=alice_api.key).last_used_at

    time_machine.move_to("2026-03-01 10:00:00+00:00", tick=False)
    alice_api.get("lists")
    assert last_used() == datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    time_machine.move_to("2026-03-01 10:00:30+00:00", tick=False)
    alice_api.get("lists")
    assert last_used() == datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    time_machine.move_to("2026-03-01 10:01:30+00:00", tick=False)
    alice_api.get("lists")
    assert last_used() == datetime(2026, 3, 1, 10, 1, 30, tzinfo=UTC)


def test_the_rate_limit_refuses_with_retry_after_and_lets_go_later(
    alice_api: Api, settings, a_fresh_minute, time_machine
):
    settings.API_RATE = "3/min"
    for _ in range(3):
        assert alice_api.get("lists").status_code == 200
    refused = alice_api.get("lists")
    assert refused.status_code == 429
    assert refused.json()["code"] == 429
    assert 1 <= int(refused["Retry-After"]) <= 120
    time_machine.shift(timedelta(minutes=2))
    assert alice_api.get("lists").status_code == 200


def test_the_rate_limit_slides_over_the_minute_boundary(
    alice_api: Api, settings, a_fresh_minute, time_machine
):
    settings.API_RATE = "4/min"
    time_machine.shift(timedelta(seconds=50))
    for _ in range(4):
        assert alice_api.get("lists").status_code == 200
    # Ten seconds later a new fixed window starts, but the last minute still holds 4.
    time_machine.shift(timedelta(seconds=15))
    assert alice_api.get("lists").status_code == 429


@pytest.fixture
def schema_clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(schema, "_clock", fake)
    return fake


def create_member(api: Api, member_list, values: dict) -> Member:
    response = api.json("POST", f"lists/{member_list.pk}/members", values)
    assert response.status_code == 201, response.content
    return Member.objects.get(pk=response.json()["id"])


def test_a_field_added_is_used_by_the_next_member_write_even_on_a_frozen_clock(
    alice_api: Api, shop_list, time_machine
):
    time_machine.move_to("2026-03-01 10:00:00+00:00", tick=False)
    create_member(alice_api, shop_list, {"email": "first@example.com"})
    services.list_set_fields(
        member_list=shop_list, fields=[FieldSpec("club", "text", "Club")], replace=False
    )
    member = create_member(alice_api, shop_list, {"email": "second@example.com", "club": "Gold"})
    assert member.data["club"] == "Gold"


def test_a_field_changed_around_the_services_is_seen_within_the_keep_time(
    alice_api: Api, shop_list, schema_clock
):
    create_member(alice_api, shop_list, {"email": "first@example.com"})
    Field.objects.create(list=shop_list, name="club", label="Club", kind="custom", format="text")
    schema_clock.now += schema.KEEP_SECONDS + 0.1
    member = create_member(alice_api, shop_list, {"email": "second@example.com", "club": "Gold"})
    assert member.data["club"] == "Gold"
