from datetime import timedelta

from django.utils import timezone

from accounts.models import ApiKey
from accounts.services import apikey_create, apikey_revoke
from tests.api.conftest import Api, rfc1123


def test_a_signed_request_is_answered(alice_api: Api):
    response = alice_api.get("lists")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"


def test_no_signature_is_401_with_a_json_code(client):
    response = client.get("/loyalty/v1/lists")
    assert response.status_code == 401
    assert response.json() == {"code": 401, "message": "Unauthorized"}


def test_a_wrong_secret_is_401(alice_api: Api):
    bad = Api(alice_api.key, "not-the-secret")
    response = bad.get("lists")
    assert response.status_code == 401
    assert response.json()["code"] == 401


def test_a_stale_timestamp_is_401_and_a_fresh_one_passes(alice_api: Api):
    stale = rfc1123(timezone.now() - timedelta(minutes=16))
    assert alice_api.get("lists", timestamp=stale).status_code == 401
    recent = rfc1123(timezone.now() - timedelta(minutes=14))
    assert alice_api.get("lists", timestamp=recent).status_code == 200


def test_all_three_timestamp_formats_are_accepted(alice_api: Api):
    now = timezone.now()
    glued = rfc1123(now).replace(" GMT", "GMT")
    iso = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    for stamp in (rfc1123(now), glued, iso):
        assert alice_api.get("lists", timestamp=stamp).status_code == 200, stamp


def test_a_revoked_key_is_401(alice_api: Api, personas):
    apikey_revoke(api_key=ApiKey.objects.get(key=alice_api.key))
    assert alice_api.get("lists").status_code == 401


def test_the_secret_is_not_stored_in_plain_text(personas):
    api_key, secret = apikey_create(account=personas.account_a, name="x")
    stored = ApiKey.objects.filter(pk=api_key.pk).values_list("secret_encrypted", flat=True)[0]
    assert secret not in stored
    assert stored.startswith("k1$")


def test_a_read_only_key_cannot_write(personas):
    from accounts.models import ApiScope

    api_key, secret = apikey_create(account=personas.account_a, name="ro", scope=ApiScope.READ)
    api = Api(api_key.key, secret)
    assert api.get("lists").status_code == 200
    response = api.json("POST", "lists", {"name": "Nope"})
    assert response.status_code == 403
    assert response.json()["code"] == 403


def test_repeated_bad_signatures_are_throttled_per_key_and_ip(alice_api: Api, settings):
    settings.API_SIGNATURE_FAILURE_LIMIT = 3
    bad = Api(alice_api.key, "wrong")
    for _ in range(3):
        assert bad.get("lists").status_code == 401
    assert bad.get("lists").status_code == 429
    # The real client from another IP is unaffected.
    assert alice_api.get("lists", REMOTE_ADDR="192.0.2.99").status_code == 200


def test_last_use_is_recorded(alice_api: Api):
    alice_api.get("lists")
    assert ApiKey.objects.get(key=alice_api.key).last_used_at is not None


def test_unknown_api_paths_are_json_404_without_redirect(alice_api: Api):
    for path in ("nothing-here", "lists/abc", "/reseller/whatever", "/loyalty/v3/x"):
        response = alice_api.get(path)
        assert response.status_code == 404, path
        assert response.json() == {"code": 404, "message": "Not Found"}


def test_trailing_slashes_are_optional_and_never_redirect(alice_api: Api, shop_list):
    for path in (
        "lists",
        "lists/",
        f"lists/{shop_list.pk}",
        f"lists/{shop_list.pk}/",
        f"lists/{shop_list.pk}/members/",
    ):
        assert alice_api.get(path).status_code == 200, path


def test_an_unsupported_method_is_a_json_405(alice_api: Api):
    response = alice_api.call("PATCH", "lists")
    assert response.status_code == 405
    assert response.json() == {"code": 405, "message": "Method Not Allowed"}
