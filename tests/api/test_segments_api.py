"""Segments through the API (S1 to S5), sent the way the PHP client sends them."""

from __future__ import annotations

import pytest

from members import services
from members.models import Member, MemberStatus, Segment
from tests.api.conftest import Api


def segments_path(shop_list) -> str:
    return f"lists/{shop_list.pk}/segments"


@pytest.fixture
def people(shop_list):
    def add(email: str, status: str = MemberStatus.ACTIVE, **values) -> None:
        member = services.member_create(member_list=shop_list, values={"email": email, **values})
        Member.objects.filter(pk=member.pk).update(status=status)

    add("ann@x.dk", firstname="test", city="Vejle", points=150)
    add("bo@x.dk", firstname="test", city="Vejle", points=20)
    add("cy@x.dk", firstname="Cy", city="Aarhus", points=300)
    add("di@x.dk", firstname="Di", city="Aarhus", points=10, status=MemberStatus.UNSUBSCRIBED)
    return shop_list


def create(api: Api, shop_list, data: dict) -> int:
    response = api.multipart("POST", segments_path(shop_list), data)
    assert response.status_code == 201, response.content
    return response.json()["id"]


# -- create (S3) and read (S2) ----------------------------------------------------------


def test_the_php_client_creates_a_segment_with_multipart_and_reads_its_live_count(
    alice_api: Api, people
):
    # src/Examples/SegmentsExamples.php
    segment_id = create(
        alice_api,
        people,
        {"logic": "and", "filters": {"firstname": {"eq": ["test"]}}, "name": "Navn er test"},
    )

    body = alice_api.get(f"{segments_path(people)}/{segment_id}").json()

    assert body["id"] == segment_id
    assert body["name"] == "Navn er test"
    assert body["logic"] == "and"
    assert body["filters"] == {"firstname": {"eq": ["test"]}}
    assert body["count"] == 2
    assert body["valid"] is True
    assert "code" not in body


def test_or_logic_counts_members_matching_any_filter(alice_api: Api, people):
    segment_id = create(
        alice_api,
        people,
        {
            "name": "Vejle or rich",
            "logic": "or",
            "filters": {"city": {"eq": ["Vejle"]}, "points": {"gte": ["200"]}},
        },
    )

    assert alice_api.get(f"{segments_path(people)}/{segment_id}").json()["count"] == 3


def test_a_status_filter_counts_only_members_in_that_state(alice_api: Api, people):
    segment_id = create(
        alice_api,
        people,
        {
            "name": "Aarhus, active",
            "filters": {"city": {"eq": ["Aarhus"]}, "status": {"eq": ["active"]}},
        },
    )

    assert alice_api.get(f"{segments_path(people)}/{segment_id}").json()["count"] == 1


def test_nested_groups_are_created_with_json_and_read_back_as_a_tree(alice_api: Api, people):
    tree = {
        "logic": "or",
        "rules": [
            {"field": "city", "op": "eq", "values": ["Aarhus"]},
            {
                "logic": "and",
                "rules": [
                    {"field": "city", "op": "eq", "values": ["Vejle"]},
                    {"field": "points", "op": "gte", "values": ["100"]},
                ],
            },
        ],
    }
    response = alice_api.json("POST", segments_path(people), {"name": "Tree", "filters": tree})
    assert response.status_code == 201, response.content

    body = alice_api.get(f"{segments_path(people)}/{response.json()['id']}").json()

    assert body["count"] == 3  # cy, di (Aarhus) and ann (Vejle with 150 points)
    assert body["logic"] == "or"
    assert body["filters"] == tree
    assert body["rules"] == tree


def test_nested_groups_also_arrive_in_bracket_syntax(alice_api: Api, people):
    segment_id = create(
        alice_api,
        people,
        {
            "name": "Brackets",
            "filters": {
                "logic": "and",
                "rules": [
                    {"field": "status", "op": "eq", "values": ["active"]},
                    {
                        "logic": "or",
                        "rules": [
                            {"field": "points", "op": "lt", "values": ["50"]},
                            {"field": "points", "op": "gt", "values": ["200"]},
                        ],
                    },
                ],
            },
        },
    )

    assert alice_api.get(f"{segments_path(people)}/{segment_id}").json()["count"] == 2


def test_the_list_of_segments_shows_each_with_its_count(alice_api: Api, people):
    vejle = create(alice_api, people, {"name": "Vejle", "filters": {"city": {"eq": ["Vejle"]}}})
    aarhus = create(alice_api, people, {"name": "Aarhus", "filters": {"city": {"eq": ["Aarhus"]}}})

    body = alice_api.get(segments_path(people)).json()

    assert [(s["id"], s["name"], s["count"]) for s in body] == [
        (aarhus, "Aarhus", 2),
        (vejle, "Vejle", 2),
    ]


def test_a_list_without_segments_answers_an_empty_array(alice_api: Api, shop_list):
    response = alice_api.get(f"{segments_path(shop_list)}/")

    assert response.status_code == 200
    assert response.json() == []


@pytest.mark.parametrize(
    ("data", "field", "named"),
    [
        ({"name": "x", "filters": {"nosuch": {"eq": ["1"]}}}, "filters", "'nosuch'"),
        ({"name": "x", "filters": {"city": {"like": ["1"]}}}, "filters[city]", "'like'"),
        ({"name": "x", "filters": {"city": {"gt": ["1"]}}}, "filters", "gt"),
        ({"name": "x", "logic": "xor", "filters": {"city": {"eq": ["1"]}}}, "logic", "'xor'"),
        ({"name": "x", "filters": {"status": {"eq": ["asleep"]}}}, "filters", "'asleep'"),
        ({"filters": {"city": {"eq": ["1"]}}}, "name", "name"),
        ({"name": "x"}, "filters", "filters"),
    ],
)
def test_a_bad_segment_is_a_400_naming_what_is_wrong(alice_api: Api, shop_list, data, field, named):
    response = alice_api.multipart("POST", segments_path(shop_list), data)

    assert response.status_code == 400
    assert response.json()["field"] == field
    assert named in response.json()["error"]
    assert not Segment.objects.exists()


def test_a_bad_nested_rule_is_a_400_naming_it(alice_api: Api, shop_list):
    tree = {"logic": "and", "rules": [{"logic": "nand", "rules": [{"field": "city", "op": "ie"}]}]}

    response = alice_api.json("POST", segments_path(shop_list), {"name": "x", "filters": tree})

    assert response.status_code == 400
    assert response.json() == {
        "error": "filters[rules][0][logic] must be and or or, not 'nand'",
        "field": "logic",
    }


def test_the_singular_filter_of_member_listing_is_read_too(alice_api: Api, people):
    segment_id = create(alice_api, people, {"name": "x", "filter": {"city": {"eq": ["Vejle"]}}})

    assert alice_api.get(f"{segments_path(people)}/{segment_id}").json()["count"] == 2


# -- update (S4) and delete (S5) --------------------------------------------------------


def test_the_php_client_updates_a_segment_urlencoded(alice_api: Api, people):
    segment_id = create(alice_api, people, {"name": "Old", "filters": {"city": {"eq": ["Vejle"]}}})

    response = alice_api.form(
        "PUT",
        f"{segments_path(people)}/{segment_id}",
        {
            "name": "New",
            "logic": "or",
            "filters": {"city": {"eq": ["Aarhus"]}, "points": {"gt": ["100"]}},
        },
    )

    assert response.status_code == 204
    assert response.content == b""
    body = alice_api.get(f"{segments_path(people)}/{segment_id}").json()
    assert (body["name"], body["logic"], body["count"]) == ("New", "or", 3)


def test_logic_alone_changes_how_the_filters_combine(alice_api: Api, people):
    segment_id = create(
        alice_api,
        people,
        {"name": "s", "filters": {"city": {"eq": ["Vejle"]}, "points": {"gt": ["100"]}}},
    )
    path = f"{segments_path(people)}/{segment_id}"
    assert alice_api.get(path).json()["count"] == 1

    assert alice_api.form("PUT", path, {"logic": "or"}).status_code == 204

    assert alice_api.get(path).json()["count"] == 3


def test_a_bad_update_is_a_400_and_changes_nothing(alice_api: Api, people):
    segment_id = create(alice_api, people, {"name": "Keep", "filters": {"city": {"eq": ["Vejle"]}}})
    path = f"{segments_path(people)}/{segment_id}"

    response = alice_api.form("PUT", path, {"name": "Lost", "filters": {"nosuch": {"eq": ["1"]}}})

    assert response.status_code == 400
    assert response.json()["field"] == "filters"
    assert alice_api.get(path).json()["name"] == "Keep"


def test_deleting_a_segment_answers_204_and_it_is_gone(alice_api: Api, people):
    segment_id = create(alice_api, people, {"name": "s", "filters": {"city": {"ie": [""]}}})
    path = f"{segments_path(people)}/{segment_id}"

    response = alice_api.call("DELETE", path)

    assert response.status_code == 204
    assert alice_api.get(path).status_code == 404


# -- a field deleted under a segment ----------------------------------------------------


def test_a_segment_on_a_deleted_field_counts_0_and_says_why(alice_api: Api, people):
    segment_id = create(alice_api, people, {"name": "Rich", "filters": {"points": {"gt": ["100"]}}})
    services.list_set_fields(member_list=people, fields=[], replace=True)  # drops "points"

    one = alice_api.get(f"{segments_path(people)}/{segment_id}")
    every = alice_api.get(segments_path(people))

    assert one.status_code == every.status_code == 200
    assert one.json()["count"] == 0
    assert one.json()["valid"] is False
    assert one.json()["problem"] == "'points' is not a field of this list"
    assert every.json()[0]["count"] == 0
    assert every.json()[0]["valid"] is False


def test_a_segment_on_a_deleted_field_is_repaired_by_new_filters(alice_api: Api, people):
    segment_id = create(alice_api, people, {"name": "Rich", "filters": {"points": {"gt": ["100"]}}})
    services.list_set_fields(member_list=people, fields=[], replace=True)
    path = f"{segments_path(people)}/{segment_id}"

    assert alice_api.form("PUT", path, {"name": "Renamed"}).status_code == 204
    assert alice_api.form("PUT", path, {"filters": {"city": {"eq": ["Vejle"]}}}).status_code == 204

    body = alice_api.get(path).json()
    assert (body["name"], body["count"], body["valid"]) == ("Renamed", 2, True)


# -- not found and tenancy --------------------------------------------------------------


def test_a_missing_segment_or_list_is_404(alice_api: Api, shop_list):
    for path in (f"{segments_path(shop_list)}/424242", "lists/424242/segments"):
        response = alice_api.get(path)
        assert response.status_code == 404
        assert response.json() == {"code": 404, "message": "Not Found"}


def test_carol_gets_404_for_alices_segment_even_through_her_own_list(
    alice_api: Api, carol_api: Api, people, personas
):
    segment_id = create(alice_api, people, {"name": "Secret", "filters": {"city": {"ie": [""]}}})
    carols_list = services.list_create(account=personas.account_b, name="Carol's")

    for path in (
        f"{segments_path(people)}/{segment_id}",
        f"lists/{carols_list.pk}/segments/{segment_id}",
    ):
        assert carol_api.get(path).status_code == 404
        assert carol_api.form("PUT", path, {"name": "Taken"}).status_code == 404
        assert carol_api.call("DELETE", path).status_code == 404
    assert carol_api.get(f"lists/{carols_list.pk}/segments").json() == []
    assert Segment.objects.get(pk=segment_id).name == "Secret"
