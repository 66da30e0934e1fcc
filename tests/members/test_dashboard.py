"""The dashboard's lists, members, imports, exports and API keys, as Alice uses them."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import ApiKey
from members import services
from members.imports import import_run
from members.models import Field, Import, List, Member
from tests.conftest import Personas


@pytest.fixture(autouse=True)
def import_dir(settings, tmp_path):
    settings.IMPORT_DIR = tmp_path / "imports"


@pytest.fixture
def alice(client: Client, personas: Personas) -> Client:
    client.force_login(personas.alice)
    return client


@pytest.fixture
def shop(personas: Personas) -> List:
    member_list = services.list_create(account=personas.account_a, name="Nyhedsbrev")
    for i, (first, city) in enumerate([("Søren", "Århus"), ("Mette", "Vejle"), ("Bo", "Køge")]):
        services.member_create(
            member_list=member_list,
            values={"email": f"m{i}@example.dk", "firstname": first, "city": city},
        )
    return member_list


def test_the_lists_page_shows_alices_lists_only(alice: Client, shop, personas):
    services.list_create(account=personas.account_b, name="Carols list")
    page = alice.get(reverse("members:lists"))
    assert "Nyhedsbrev" in page.text
    assert "Carols list" not in page.text


def test_an_empty_account_gets_a_helpful_empty_state(alice: Client):
    page = alice.get(reverse("members:lists"))
    assert "Create your first list" in page.text


def test_creating_a_list_and_a_missing_name_is_a_form_error(alice: Client, personas):
    bad = alice.post(reverse("members:list_create"), {"name": "", "duplicates": "disallow"})
    assert bad.status_code == 200
    assert "This field is required" in bad.text
    good = alice.post(reverse("members:list_create"), {"name": "VIP", "duplicates": "allow"})
    created = List.objects.get(account=personas.account_a, name="VIP")
    assert good["Location"] == reverse("members:list_detail", args=[created.pk])
    assert created.fields.count() == 12  # the standard fields


def test_the_member_table_searches_and_filters(alice: Client, shop):
    url = reverse("members:list_detail", args=[shop.pk])
    assert "m0@example.dk" in alice.get(url).text
    found = alice.get(url, {"q": "mette"})
    assert "m1@example.dk" in found.text and "m0@example.dk" not in found.text
    none = alice.get(url, {"status": "unsubscribed"})
    assert "No member matches" in none.text


def test_the_member_table_pages(alice: Client, shop):
    for i in range(60):
        services.member_create(member_list=shop, values={"email": f"bulk{i}@example.dk"})
    url = reverse("members:list_detail", args=[shop.pk])
    first = alice.get(url)
    assert "Page 1 of 2" in first.text
    second = alice.get(url, {"page": 2})
    assert "Page 2 of 2" in second.text


def test_adding_a_custom_choice_field(alice: Client, shop):
    url = reverse("members:list_fields", args=[shop.pk])
    missing = alice.post(url, {"label": "Favourite shop", "format": "choice", "options": ""})
    assert "needs at least one option" in missing.text
    alice.post(url, {"label": "Favourite shop", "format": "choice", "options": "Aarhus\nOdense"})
    field = Field.objects.get(list=shop, name="favourite_shop")
    assert [o.label for o in field.options.all()] == ["Aarhus", "Odense"]


def test_a_member_page_shows_values_and_history(alice: Client, shop):
    member = Member.objects.get(email="m0@example.dk")
    page = alice.get(reverse("members:member_detail", args=[shop.pk, member.pk]))
    assert "Søren" in page.text and "Århus" in page.text
    assert "History" in page.text


def test_the_gdpr_export_holds_everything_on_the_member(alice: Client, shop):
    member = Member.objects.get(email="m0@example.dk")
    response = alice.get(reverse("members:member_export", args=[shop.pk, member.pk]))
    body = json.loads(response.content)
    assert body["member"]["email"] == "m0@example.dk"
    assert body["member"]["firstname"] == "Søren"
    assert "consent" in body


def test_erasing_and_deleting_a_member(alice: Client, shop):
    first, second = Member.objects.filter(list=shop).order_by("email")[:2]
    alice.post(reverse("members:member_remove", args=[shop.pk, first.pk]), {"obscure": "1"})
    first.refresh_from_db()
    assert first.email == "" and first.data == {}
    alice.post(reverse("members:member_remove", args=[shop.pk, second.pk]))
    assert not Member.objects.filter(pk=second.pk).exists()


def test_the_list_export_is_a_csv_excel_can_read(alice: Client, shop):
    response = alice.get(reverse("members:list_export", args=[shop.pk]))
    text = b"".join(getattr(response, "streaming_content")).decode("utf-8")  # noqa: B009
    assert text.startswith("\ufeff")
    assert "Søren" in text and "Køge" in text
    assert text.count("@example.dk") == 3


def test_the_import_wizard_previews_then_imports(alice: Client, shop):
    upload = b"email;firstname\nm0@example.dk;Sorenius\nnew@example.dk;Ny\nbroken;X\n"
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = alice.post(
        reverse("members:import_start", args=[shop.pk]),
        {
            "file": SimpleUploadedFile("members.csv", upload, "text/csv"),
            "handle_existing": "update",
        },
    )
    preview = Import.objects.get(list=shop, preview=True)
    assert response["Location"] == reverse("members:import_detail", args=[shop.pk, preview.pk])
    waiting = alice.get(response["Location"])
    assert "<progress" in waiting.text
    import_run(import_id=preview.pk)
    page = alice.get(response["Location"])
    assert "Would be added" in page.text and "broken" in page.text
    assert Member.objects.filter(list=shop).count() == 3  # nothing changed yet
    commit = alice.post(reverse("members:import_commit", args=[shop.pk, preview.pk]))
    job = Import.objects.get(list=shop, preview=False)
    assert commit["Location"] == reverse("members:import_detail", args=[shop.pk, job.pk])
    import_run(import_id=job.pk)
    status = alice.get(reverse("members:import_status", args=[shop.pk, job.pk])).json()
    assert (status["status"], status["created"], status["updated"]) == ("done", 1, 1)
    assert Member.objects.get(email="m0@example.dk").data["firstname"] == "Sorenius"


def test_a_file_that_is_not_csv_is_reported_on_the_page(alice: Client, shop):
    from django.core.files.uploadedfile import SimpleUploadedFile

    alice.post(
        reverse("members:import_start", args=[shop.pk]),
        {
            "file": SimpleUploadedFile("photo.csv", b"\x89PNG\r\n\x1a\n" + b"\0" * 50),
            "handle_existing": "update",
        },
    )
    job = Import.objects.get(list=shop)
    import_run(import_id=job.pk)
    page = alice.get(reverse("members:import_detail", args=[shop.pk, job.pk]))
    assert "could not run" in page.text and "PNG" in page.text


def test_an_owner_creates_an_api_key_and_sees_the_secret_once(alice: Client, personas):
    response = alice.post(reverse("accounts:api_keys"), {"name": "Webshop"})
    secret = re.search(r'id="new-secret" type="text" readonly value="([0-9a-f]+)"', response.text)
    assert secret
    assert "no-store" in response["Cache-Control"]
    key = ApiKey.objects.get(account=personas.account_a, name="Webshop")
    assert secret.group(1) not in key.secret_encrypted
    again = alice.get(reverse("accounts:api_keys"))
    assert secret.group(1) not in again.text
    alice.post(reverse("accounts:api_key_revoke", args=[key.pk]))
    key.refresh_from_db()
    assert key.revoked_at is not None


def test_a_plain_user_cannot_manage_api_keys(client: Client, personas):
    client.force_login(personas.bob)
    assert client.get(reverse("accounts:api_keys")).status_code == 403


def test_a_segment_is_built_counted_and_saved(alice: Client, shop):
    rules = {
        "logic": "or",
        "rules": [
            {"field": "city", "op": "eq", "values": ["Vejle"]},
            {"logic": "and", "rules": [{"field": "firstname", "op": "sw", "values": ["sø"]}]},
        ],
    }
    count = alice.post(
        reverse("members:segment_count", args=[shop.pk]),
        json.dumps(rules),
        content_type="application/json",
    )
    assert count.json() == {"count": 2}
    bad = alice.post(
        reverse("members:segment_count", args=[shop.pk]),
        json.dumps({"logic": "and", "rules": [{"field": "nope", "op": "eq", "values": ["x"]}]}),
        content_type="application/json",
    )
    assert bad.status_code == 400 and "nope" in bad.json()["error"]
    saved = alice.post(
        reverse("members:segment_new", args=[shop.pk]),
        {"name": "Vejle or Sø", "rules": json.dumps(rules)},
    )
    assert saved["Location"] == reverse("members:segments", args=[shop.pk])
    listing = alice.get(reverse("members:segments", args=[shop.pk]))
    assert "Vejle or Sø" in listing.text


def test_an_invalid_segment_is_a_form_error_and_nothing_is_saved(alice: Client, shop):
    from members.models import Segment

    page = alice.post(
        reverse("members:segment_new", args=[shop.pk]),
        {"name": "", "rules": '{"logic": "and", "rules": []}'},
    )
    assert page.status_code == 200
    assert 'role="alert"' in page.text
    assert not Segment.objects.exists()


def test_a_segment_exports_only_its_members(alice: Client, shop):
    from members.segments import segment_create
    from members.selectors import rules_from_json

    segment = segment_create(
        member_list=shop,
        name="Vejle",
        rules=rules_from_json(
            {"logic": "and", "rules": [{"field": "city", "op": "eq", "values": ["Vejle"]}]}
        ),
    )
    response = alice.get(reverse("members:segment_export", args=[shop.pk, segment.pk]))
    text = b"".join(getattr(response, "streaming_content")).decode("utf-8")  # noqa: B009
    assert "m1@example.dk" in text
    assert "m0@example.dk" not in text and "m2@example.dk" not in text
