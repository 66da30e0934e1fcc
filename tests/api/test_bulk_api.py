"""Bulk copy and move (heyloyalty-api.md M8), as Magento's moveListMembers sends it and in
the PHP client's encodings."""

from __future__ import annotations

from typing import Any

import pytest

from accounts.models import ApiScope
from accounts.services import apikey_create
from members import services
from members.fields import FieldSpec
from members.models import Duplicates, List, Member, MemberStatus
from members.schema import ListSchema
from tests.api.conftest import Api
from tests.conftest import Personas


@pytest.fixture
def shop(personas: Personas) -> List:
    return services.list_create(
        account=personas.account_a,
        name="Shop",
        fields=[
            FieldSpec("shoe", "choice", "Shoe size", options=["40", "41", "42"]),
            FieldSpec("interests", "multi", "Interests", options=["Music", "Books", "Film"]),
            FieldSpec("points", "number", "Points"),
            FieldSpec("vip", "boolean", "VIP"),
            FieldSpec("secret", "password", "Secret"),
        ],
    )


@pytest.fixture
def club(personas: Personas) -> List:
    """The target: the same names, other option ids, other formats, a field fewer."""
    return services.list_create(
        account=personas.account_a,
        name="Club",
        fields=[
            FieldSpec("shoe", "choice", "Shoe", options=["42", "41"]),
            FieldSpec("interests", "multi", "Interests", options=["film", "Music"]),
            FieldSpec("points", "text", "Points"),
            FieldSpec("secret", "text", "Secret"),
        ],
    )


def option(member_list: List, field: str, label: str) -> int:
    options = ListSchema.load(member_list).options[field]
    return next(value for value, text in options.items() if text == label)


def add(member_list: List, **values: Any) -> Member:
    return services.member_create(member_list=member_list, values=values, skip_optin=True)


def bulk(api: Api, source: List, action: str, body: dict[str, Any], encoding: str = "json"):
    path = f"lists/{source.pk}/members/bulk/{action}"
    if encoding == "json":
        return api.json("POST", path, body)
    return getattr(api, encoding)("POST", path, body)


def magento(target: List, members: list[Member], field: str = "email", action: str = "skip"):
    """[m2] moveListMembers: JSON with the bracket keys spelt out literally."""
    return {
        "listId": target.pk,
        "handleDuplicates[field]": field,
        "handleDuplicates[action]": action,
        "members": [str(m.pk) for m in members],
    }


def test_copy_puts_the_members_on_the_target_and_leaves_the_source(
    alice_api: Api, shop: List, club: List
):
    jens = add(shop, email="jens@example.dk", firstname="Jens", points=7)
    aase = add(shop, email="aase@example.dk", mobile="12345678")
    response = bulk(alice_api, shop, "copy", magento(club, [jens, aase]))
    assert response.status_code == 200, response.content
    assert response.json() == {
        "copied": 2,
        "patched": 0,
        "updated": 0,
        "skipped": 0,
        "removed": 0,
        "errors": [],
    }
    assert shop.members.count() == 2
    copy = club.members.get(email="jens@example.dk")
    assert copy.pk != jens.pk
    assert copy.data == {"firstname": "Jens", "points": "7"}  # a number into a text field
    assert club.members.get(email="aase@example.dk").mobile == "12345678"


def test_move_removes_the_members_from_the_source(alice_api: Api, shop: List, club: List):
    jens = add(shop, email="jens@example.dk")
    stays = add(shop, email="stays@example.dk")
    response = bulk(alice_api, shop, "move", magento(club, [jens]))
    assert response.status_code == 200, response.content
    assert (response.json()["copied"], response.json()["removed"]) == (1, 1)
    assert list(shop.members.all()) == [stays]
    assert club.members.get().email == "jens@example.dk"


@pytest.mark.parametrize("encoding", ["json", "multipart", "form"])
def test_every_body_encoding_works(alice_api: Api, shop: List, club: List, encoding: str):
    jens = add(shop, email="jens@example.dk")
    body = {
        "listId": club.pk,
        "handleDuplicates": {"field": "email", "action": "skip"},
        "members": [str(jens.pk)],
    }
    response = bulk(alice_api, shop, "move", body, encoding)
    assert response.status_code == 200, response.content
    assert club.members.get().email == "jens@example.dk"
    assert not shop.members.exists()


def test_the_path_takes_a_trailing_slash_and_an_unknown_action_is_a_json_404(
    alice_api: Api, shop: List, club: List
):
    jens = add(shop, email="jens@example.dk")
    response = alice_api.json("POST", f"lists/{shop.pk}/members/bulk/copy/", magento(club, [jens]))
    assert response.status_code == 200
    response = alice_api.json("POST", f"lists/{shop.pk}/members/bulk/delete", magento(club, [jens]))
    assert response.status_code == 404
    assert response.json()["code"] == 404


def test_choices_travel_by_label_and_what_does_not_fit_is_dropped(
    alice_api: Api, shop: List, club: List
):
    member = add(
        shop,
        email="jens@example.dk",
        shoe=option(shop, "shoe", "42"),
        interests=[option(shop, "interests", x) for x in ("Music", "Books", "Film")],
        vip=1,  # no such field on the target
        secret="hunter2",  # a password hash is never copied into a text field
    )
    assert option(shop, "shoe", "42") != option(club, "shoe", "42")
    bulk(alice_api, shop, "copy", magento(club, [member]))
    copy = club.members.get()
    assert copy.data == {
        "shoe": option(club, "shoe", "42"),
        "interests": sorted(
            [option(club, "interests", "film"), option(club, "interests", "Music")]
        ),
    }


def test_an_option_the_target_lacks_is_dropped_not_an_error(alice_api: Api, shop: List, club: List):
    member = add(shop, email="jens@example.dk", shoe=option(shop, "shoe", "40"))
    response = bulk(alice_api, shop, "copy", magento(club, [member]))
    assert response.status_code == 200
    assert "shoe" not in club.members.get().data


def test_skip_leaves_the_existing_member_alone(alice_api: Api, shop: List, club: List):
    existing = add(club, email="jens@example.dk", firstname="Old")
    member = add(shop, email="jens@example.dk", firstname="New", lastname="Hansen")
    response = bulk(alice_api, shop, "move", magento(club, [member], action="skip"))
    assert (response.json()["skipped"], response.json()["copied"]) == (1, 0)
    existing.refresh_from_db()
    assert existing.data == {"firstname": "Old"}
    assert club.members.count() == 1
    assert not shop.members.exists()  # the person is on the target: the move is done


def test_patch_fills_only_the_existing_members_empty_fields(alice_api: Api, shop: List, club: List):
    existing = add(club, email="jens@example.dk", firstname="Old")
    member = add(
        shop, email="jens@example.dk", mobile="12345678", firstname="New", lastname="Hansen"
    )
    response = bulk(alice_api, shop, "copy", magento(club, [member], action="patch"))
    assert response.json()["patched"] == 1
    existing.refresh_from_db()
    assert existing.data == {"firstname": "Old", "lastname": "Hansen"}
    assert existing.mobile == "12345678"
    assert club.members.count() == 1


def test_update_replaces_the_existing_members_data_and_keeps_its_id(
    alice_api: Api, shop: List, club: List
):
    existing = add(club, email="jens@example.dk", firstname="Old", city="Vejle")
    member = add(shop, email="jens@example.dk", firstname="New")
    response = bulk(alice_api, shop, "copy", magento(club, [member], action="update"))
    assert response.json()["updated"] == 1
    (only,) = club.members.all()
    assert only.pk == existing.pk
    assert only.data == {"firstname": "New"}


def test_update_never_makes_an_unsubscribed_member_active_again(
    alice_api: Api, shop: List, club: List
):
    existing = add(club, email="jens@example.dk")
    Member.objects.filter(pk=existing.pk).update(
        status=MemberStatus.UNSUBSCRIBED, email_status=MemberStatus.UNSUBSCRIBED
    )
    member = add(shop, email="jens@example.dk", firstname="New")
    bulk(alice_api, shop, "copy", magento(club, [member], action="update"))
    existing.refresh_from_db()
    assert existing.status == MemberStatus.UNSUBSCRIBED
    assert existing.data == {"firstname": "New"}


def test_update_keeps_a_confirmed_member_confirmed(alice_api: Api, personas: Personas, club: List):
    optin = services.list_create(account=personas.account_a, name="Optin", double_optin=True)
    existing = add(club, email="jens@example.dk")
    member = services.member_create(member_list=optin, values={"email": "jens@example.dk"})
    assert member.status == MemberStatus.UNCONFIRMED
    bulk(alice_api, optin, "copy", magento(club, [member], action="update"))
    existing.refresh_from_db()
    assert existing.status == MemberStatus.ACTIVE


@pytest.mark.parametrize(("field", "copied"), [("email", 1), ("mobile", 0), ("both", 0)], ids=str)
def test_the_duplicate_field_decides_what_matches(
    alice_api: Api, personas: Personas, shop: List, field: str, copied: int
):
    target = services.list_create(
        account=personas.account_a, name="Allows all", duplicates=Duplicates.ALLOW
    )
    add(target, email="other@example.dk", mobile="12345678")
    member = add(shop, email="jens@example.dk", mobile="12345678")
    response = bulk(alice_api, shop, "copy", magento(target, [member], field=field))
    assert response.json()["copied"] == copied
    assert response.json()["skipped"] == 1 - copied


def test_the_targets_duplicate_policy_holds_and_a_move_keeps_what_it_could_not_copy(
    alice_api: Api, shop: List, club: List
):
    add(club, email="owner@example.dk", mobile="12345678")  # club refuses duplicate mobiles
    clash = add(shop, email="jens@example.dk", mobile="12345678")
    fine = add(shop, email="aase@example.dk")
    response = bulk(alice_api, shop, "move", magento(club, [clash, fine], field="email"))
    assert response.status_code == 200
    body = response.json()
    assert (body["copied"], body["removed"]) == (1, 1)
    assert body["errors"] == [
        {
            "member": str(clash.pk),
            "field": "mobile",
            "error": "a member with this mobile number is already on the list",
        }
    ]
    assert list(shop.members.all()) == [clash]
    assert club.members.filter(mobile="12345678").count() == 1


def test_two_source_members_that_are_one_person_become_one_target_member(
    alice_api: Api, personas: Personas, club: List
):
    source = services.list_create(
        account=personas.account_a, name="Messy", duplicates=Duplicates.ALLOW
    )
    first = add(source, email="jens@example.dk", firstname="Jens")
    second = add(source, email="jens@example.dk", lastname="Hansen")
    response = bulk(alice_api, source, "copy", magento(club, [first, second], action="patch"))
    assert (response.json()["copied"], response.json()["patched"]) == (1, 1)
    assert club.members.get().data == {"firstname": "Jens", "lastname": "Hansen"}


def test_a_field_the_target_requires_is_reported_and_the_member_left_alone(
    alice_api: Api, personas: Personas, shop: List
):
    strict = services.list_create(
        account=personas.account_a,
        name="Strict",
        fields=[FieldSpec("points", "number", "Points", required=True)],
    )
    member = add(shop, email="jens@example.dk")
    response = bulk(alice_api, shop, "move", magento(strict, [member]))
    assert response.json()["errors"] == [
        {
            "member": str(member.pk),
            "field": "points",
            "error": "the target list requires this field",
        }
    ]
    assert not strict.members.exists()
    assert shop.members.get() == member


def test_an_unconfirmed_member_is_asked_to_confirm_the_target_list(
    alice_api: Api, personas: Personas, shop: List, django_capture_on_commit_callbacks
):
    optin = services.list_create(account=personas.account_a, name="Optin", double_optin=True)
    member = services.member_create(
        member_list=optin, values={"email": "jens@example.dk"}, skip_optin=False
    )
    with django_capture_on_commit_callbacks() as callbacks:
        bulk(alice_api, optin, "move", magento(shop, [member]))
    assert shop.members.get().status == MemberStatus.UNCONFIRMED
    assert len(callbacks) == 1


def test_ids_that_are_not_members_of_the_source_list_are_a_400_and_nothing_is_written(
    alice_api: Api, shop: List, club: List
):
    jens = add(shop, email="jens@example.dk")
    elsewhere = add(club, email="club@example.dk")
    unknown = "6f1e2d3c-0000-4000-8000-000000000000"
    body = magento(club, [jens])
    body["members"] += [str(elsewhere.pk), unknown, "not-a-guid"]
    response = bulk(alice_api, shop, "move", body)
    assert response.status_code == 400
    error = response.json()
    assert error["field"] == "members"
    for named in (str(elsewhere.pk), unknown, "not-a-guid"):
        assert named in error["error"]
    assert str(jens.pk) not in error["error"]
    assert shop.members.get() == jens
    assert club.members.get() == elsewhere


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"handleDuplicates[action]": "delete"}, "handleDuplicates[action]"),
        ({"handleDuplicates[field]": "firstname"}, "handleDuplicates[field]"),
        ({"listId": ""}, "listId"),
        ({"listId": "many"}, "listId"),
        ({"members": []}, "members"),
        ({"members": [{"id": "x"}]}, "members"),
    ],
    ids=lambda v: str(v),
)
def test_bad_input_is_a_400_naming_the_field(
    alice_api: Api, shop: List, club: List, change: dict, field: str
):
    jens = add(shop, email="jens@example.dk")
    response = bulk(alice_api, shop, "move", {**magento(club, [jens]), **change})
    assert response.status_code == 400, response.content
    assert response.json()["field"] == field
    assert response.json()["error"]
    assert shop.members.get() == jens


def test_the_target_may_not_be_the_source(alice_api: Api, shop: List):
    jens = add(shop, email="jens@example.dk")
    response = bulk(alice_api, shop, "move", magento(shop, [jens]))
    assert response.status_code == 400
    assert response.json()["field"] == "listId"


def test_another_accounts_target_list_is_a_404(alice_api: Api, personas: Personas, shop: List):
    carols = services.list_create(account=personas.account_b, name="Carol's")
    jens = add(shop, email="jens@example.dk")
    response = bulk(alice_api, shop, "copy", magento(carols, [jens]))
    assert response.status_code == 404
    assert response.json() == {"code": 404, "message": "Not Found"}
    assert not carols.members.exists()


def test_a_read_only_key_cannot_copy(personas: Personas, shop: List, club: List):
    api_key, secret = apikey_create(account=personas.account_a, name="ro", scope=ApiScope.READ)
    jens = add(shop, email="jens@example.dk")
    response = bulk(Api(api_key.key, secret), shop, "copy", magento(club, [jens]))
    assert response.status_code == 403
    assert response.json()["code"] == 403
    assert not club.members.exists()
