import json
from urllib.parse import urlencode

from django.db import connection

from members import services
from members.models import Member, MemberStatus
from tests.api.conftest import Api, php_query


def make(shop_list, **values) -> Member:
    return services.member_create(member_list=shop_list, values=values)


def members_path(shop_list) -> str:
    return f"lists/{shop_list.pk}/members"


# -- create (M3), one test per client style -------------------------------------------


def test_php_client_creates_a_member_with_multipart(alice_api: Api, shop_list):
    response = alice_api.multipart(
        "POST",
        members_path(shop_list),
        {
            "firstname": "Søren",
            "email": "Soren@Example.dk",
            "mobile": 12345678,
            "sex": 1,
            "birthdate": "1973-06-26",
            "interests": [1, 3],
            "newsletter": "",
        },
    )
    assert response.status_code == 201, response.content
    member = Member.objects.get(pk=response.json()["id"])
    assert member.email == "soren@example.dk"
    assert member.data["firstname"] == "Søren"
    assert member.data["interests"] == [1, 3]
    assert member.data["newsletter"] is False


def test_mindplay_client_creates_a_member_urlencoded(alice_api: Api, shop_list):
    response = alice_api.form(
        "POST",
        members_path(shop_list),
        {
            "email": "mp@example.dk",
            "mobile": "87654321",
            "sex": "2",
            "newsletter": "1",
        },
    )
    assert response.status_code == 201
    assert set(response.json()) == {"id"}


def test_magento_and_brandmonkey_create_with_json_and_extra_keys(alice_api: Api, shop_list):
    response = alice_api.json(
        "POST",
        members_path(shop_list),
        {
            "firstname": "Jo",
            "lastname": "Berg",
            "email": "jo@example.dk",
            "opt_in": True,
            "skipOptIn": 1,
        },
    )
    assert response.status_code == 201, response.content


def test_old_wordpress_sends_the_member_in_the_query_string(alice_api: Api, shop_list):
    response = alice_api.call(
        "POST",
        members_path(shop_list) + "/",
        query={"email": "wp@example.dk", "shoe": [2]},
        timestamp=None,
    )
    assert response.status_code == 201, response.content
    assert Member.objects.get(email="wp@example.dk").data["shoe"] == 2


def test_a_duplicate_email_on_a_disallow_list_is_a_400(alice_api: Api, shop_list):
    make(shop_list, email="taken@example.dk")
    response = alice_api.json("POST", members_path(shop_list), {"email": "TAKEN@example.dk"})
    assert response.status_code == 400
    assert response.json()["field"] == "email"
    assert Member.objects.filter(email="taken@example.dk").count() == 1


def test_bad_values_are_400s_that_name_the_field(alice_api: Api, shop_list):
    cases = [
        ({"email": "not-an-email"}, "email"),
        ({"email": "a@example.dk", "points": "many"}, "points"),
        ({"email": "a@example.dk", "shoe": 99}, "shoe"),
        ({"email": "a@example.dk", "lastlogin": "31/12/2020"}, "lastlogin"),
        ({"email": "a@example.dk", "interests": [1, 42]}, "interests"),
        ({"firstname": "No contact"}, "email"),
    ]
    for values, field in cases:
        response = alice_api.json("POST", members_path(shop_list), values)
        assert response.status_code == 400, values
        assert response.json()["field"] == field, values
        assert "error" in response.json()
    assert not Member.objects.filter(list=shop_list).exists()


def test_creating_on_a_missing_list_is_404(alice_api: Api):
    response = alice_api.json("POST", "lists/999999/members", {"email": "x@example.dk"})
    assert response.status_code == 404
    assert response.json()["code"] == 404


# -- read (M1, M2) ---------------------------------------------------------------------


def test_a_member_object_has_fields_at_top_level(alice_api: Api, shop_list):
    member = make(
        shop_list,
        email="jo@example.dk",
        firstname="Jo",
        sex=1,
        interests=[2],
        newsletter=1,
        birthdate="1973-06-26",
        password="secret-shop-pw",
    )
    body = alice_api.get(f"{members_path(shop_list)}/{member.pk}").json()
    assert body["id"] == str(member.pk)
    assert body["status"]["status"] == "active"
    assert body["firstname"] == "Jo"
    assert body["sex"] == {"id": 1, "label": "Male"}
    assert body["interests"] == [{"id": 2, "label": "Books"}]
    assert body["newsletter"] == 1
    assert body["birthdate"] == "1973-06-26"
    assert body["lastlogin"] == "0000-00-00"
    assert body["password"] is None
    assert "code" not in body
    assert len(body["created_at"]) == 19  # Y-m-d H:i:s
    assert "secret-shop-pw" not in json.dumps(body)


def test_a_missing_member_is_404(alice_api: Api, shop_list):
    for member_id in ("ad7b7fb6-5f0b-457a-82f9-0ea186ead40e", "not-a-guid"):
        response = alice_api.get(f"{members_path(shop_list)}/{member_id}")
        assert response.status_code == 404
        assert response.json() == {"code": 404, "message": "Not Found"}


def test_php_filter_by_email_finds_the_member(alice_api: Api, shop_list):
    member = make(shop_list, email="find@example.dk")
    make(shop_list, email="other@example.dk")
    body = alice_api.get(
        members_path(shop_list), {"filter": {"email": {"eq": ["FIND@example.dk"]}}}
    ).json()
    assert [m["id"] for m in body["members"]] == [str(member.pk)]
    assert body["total"] == 1


def test_mindplay_append_syntax_and_no_match_is_an_empty_200(alice_api: Api, shop_list):
    url = f"/loyalty/v1/{members_path(shop_list)}?filter%5Bemail%5D%5Beq%5D%5B%5D=none%40x.dk"
    response = alice_api.call("GET", url)
    assert response.status_code == 200
    assert response.json()["members"] == []


def test_php_double_question_mark_paging(alice_api: Api, shop_list):
    for i in range(3):
        make(shop_list, email=f"p{i}@example.dk")
    url = f"/loyalty/v1/{members_path(shop_list)}?perpage=2&page=2?perpage=2&page=2"
    body = alice_api.call("GET", url).json()
    assert body["page"] == 2 and body["perpage"] == 2
    assert len(body["members"]) == 1


def test_magento_sends_the_filter_as_a_json_body_on_get(alice_api: Api, shop_list):
    make(shop_list, email="m2@example.dk", points=10)
    make(shop_list, email="m3@example.dk", points=50)
    body = alice_api.call(
        "GET",
        members_path(shop_list),
        content_type="application/json",
        body=json.dumps({"filter": {"points": {"gte": ["20"]}}, "perpage": 10}).encode(),
    ).json()
    assert [m["email"] for m in body["members"]] == ["m3@example.dk"]


def test_old_php_sends_a_urlencoded_body_on_get(alice_api: Api, shop_list):
    make(shop_list, email="old@example.dk", firstname="Ole")
    body = alice_api.call(
        "GET",
        members_path(shop_list),
        content_type="application/x-www-form-urlencoded",
        body=urlencode(php_query({"filter": {"firstname": {"sw": ["ol"]}}})).encode(),
    ).json()
    assert [m["email"] for m in body["members"]] == ["old@example.dk"]


def test_filters_with_or_logic_and_choice_and_multi(alice_api: Api, shop_list):
    make(shop_list, email="a@example.dk", sex=1, interests=[1])
    make(shop_list, email="b@example.dk", sex=2, interests=[2, 3])
    make(shop_list, email="c@example.dk", sex=2)

    def emails(query):
        body = alice_api.get(members_path(shop_list), {**query, "orderby": "email"}).json()
        return [m["email"] for m in body["members"]]

    assert emails({"filter": {"sex": {"eq": [1]}}}) == ["a@example.dk"]
    assert emails({"filter": {"interests": {"in": [3]}}}) == ["b@example.dk"]
    assert emails({"filter": {"interests": {"ie": [""]}}}) == ["c@example.dk"]
    assert emails({"logic": "or", "filter": {"sex": {"eq": [1]}, "interests": {"in": [3]}}}) == [
        "a@example.dk",
        "b@example.dk",
    ]
    assert emails({"filter": {"email": {"neq": ["a@example.dk"]}}}) == [
        "b@example.dk",
        "c@example.dk",
    ]


def test_an_unknown_filter_field_or_operator_is_a_400(alice_api: Api, shop_list):
    for query in ({"filter": {"nosuch": {"eq": ["x"]}}}, {"filter": {"email": {"like": ["x"]}}}):
        response = alice_api.get(members_path(shop_list), query)
        assert response.status_code == 400, query
        assert "error" in response.json()


def test_listing_members_of_a_missing_list_is_404(alice_api: Api):
    assert alice_api.get("lists/424242/members").status_code == 404


# -- update (M4, M5) -------------------------------------------------------------------


def test_put_urlencoded_replaces_fields_and_reactivates(alice_api: Api, shop_list):
    member = make(shop_list, email="up@example.dk", firstname="Old", points=5)
    Member.objects.filter(pk=member.pk).update(status=MemberStatus.UNSUBSCRIBED)
    response = alice_api.form("PUT", f"{members_path(shop_list)}/{member.pk}", {"firstname": "New"})
    assert response.status_code == 204
    assert response.content == b""
    member.refresh_from_db()
    assert member.data == {"firstname": "New"}
    assert member.email == "up@example.dk"  # kept: not sent
    assert member.status == MemberStatus.ACTIVE


def test_the_api_example_puts_fields_in_the_query_string_with_a_slash(alice_api: Api, shop_list):
    member = make(shop_list, email="q@example.dk")
    response = alice_api.call(
        "PUT",
        f"{members_path(shop_list)}/{member.pk}/",
        query={"email": "q@example.dk", "firstname": "Q", "lastlogin": "1970-01-01"},
    )
    assert response.status_code == 204
    member.refresh_from_db()
    assert member.data["lastlogin"] == "1970-01-01"


def test_php_1_3_2_sends_put_as_post(alice_api: Api, shop_list):
    member = make(shop_list, email="post@example.dk")
    response = alice_api.multipart(
        "POST", f"{members_path(shop_list)}/{member.pk}", {"firstname": "Posted"}
    )
    assert response.status_code == 204
    member.refresh_from_db()
    assert member.data["firstname"] == "Posted"


def test_patch_changes_only_what_is_sent(alice_api: Api, shop_list):
    member = make(shop_list, email="pa@example.dk", firstname="Keep", points=1)
    response = alice_api.json("PATCH", f"{members_path(shop_list)}/{member.pk}", {"points": 2})
    assert response.status_code == 204
    member.refresh_from_db()
    assert member.data == {"firstname": "Keep", "points": 2}


# -- delete, obscure (M6, M6b, M9) ----------------------------------------------------


def test_delete_is_204_then_the_member_is_gone(alice_api: Api, shop_list):
    member = make(shop_list, email="del@example.dk")
    assert alice_api.call("DELETE", f"{members_path(shop_list)}/{member.pk}").status_code == 204
    assert not Member.objects.filter(pk=member.pk).exists()


def test_obscuring_leaves_no_trace_in_the_database(alice_api: Api, shop_list):
    member = make(
        shop_list,
        email="gdpr.person@example.dk",
        firstname="Gertrud",
        mobile="12121212",
        city="Vejle",
    )
    response = alice_api.form(
        "DELETE", f"{members_path(shop_list)}/{member.pk}", {"obscureMemberData": 1}
    )
    assert response.status_code == 204
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT row_to_json(m)::text FROM members_member m WHERE id = %s", [member.pk]
        )
        row = cursor.fetchone()[0]
    for trace in ("gdpr.person", "Gertrud", "12121212", "Vejle"):
        assert trace not in row
    assert alice_api.get(f"{members_path(shop_list)}/{member.pk}").status_code == 404


def test_magento_unsubscribe_deletes_by_field_on_v2(alice_api: Api, shop_list):
    make(shop_list, email="bye@example.dk")
    response = alice_api.json(
        "DELETE",
        "/loyalty/v2/lists/members/byfield",
        {"field": "email", "value": "bye@example.dk", "lists": [shop_list.pk]},
    )
    assert response.status_code == 200
    assert response.json() == {"deleted": 1}
    again = alice_api.json(
        "DELETE",
        "/loyalty/v2/lists/members/byfield",
        {"field": "email", "value": "bye@example.dk", "lists": [shop_list.pk]},
    )
    assert again.status_code == 200 and again.json() == {"deleted": 0}


# -- upsert (M7) -----------------------------------------------------------------------


def test_php_upsert_creates_then_updates(alice_api: Api, shop_list):
    path = f"{members_path(shop_list)}/upsert"
    first = alice_api.multipart(
        "POST",
        path,
        {"unique_field": "email", "member": {"email": "ups@example.dk", "firstname": "A"}},
    )
    assert first.status_code == 201, first.content
    assert first.json()["type"] == "create"
    second = alice_api.json(
        "POST",
        path,
        {"unique_field": "email", "member": {"email": "UPS@example.dk", "firstname": "B"}},
    )
    assert second.status_code == 200
    assert second.json() == {"type": "update", "member_id": first.json()["member_id"]}
    assert Member.objects.get(pk=first.json()["member_id"]).data["firstname"] == "B"


def test_upsert_refuses_when_several_members_match(alice_api: Api, personas):
    from members.models import Duplicates

    loose = services.list_create(
        account=personas.account_a, name="Loose", duplicates=Duplicates.ALLOW
    )
    make(loose, email="twin@example.dk")
    make(loose, email="twin@example.dk")
    response = alice_api.json(
        "POST",
        f"lists/{loose.pk}/members/upsert",
        {"unique_field": "email", "member": {"email": "twin@example.dk"}},
    )
    assert response.status_code == 400
    assert "more than one" in response.json()["error"]


# -- tenancy ---------------------------------------------------------------------------


def test_carol_gets_404_for_alices_lists_and_members(carol_api: Api, shop_list):
    member = make(shop_list, email="private@example.dk")
    base = members_path(shop_list)
    attempts = [
        carol_api.get(f"lists/{shop_list.pk}"),
        carol_api.get(base),
        carol_api.get(f"{base}/{member.pk}"),
        carol_api.json("POST", base, {"email": "intruder@example.dk"}),
        carol_api.json("PUT", f"{base}/{member.pk}", {"firstname": "X"}),
        carol_api.json("PATCH", f"{base}/{member.pk}", {"firstname": "X"}),
        carol_api.call("DELETE", f"{base}/{member.pk}"),
        carol_api.json(
            "POST",
            f"{base}/upsert",
            {"unique_field": "email", "member": {"email": "private@example.dk"}},
        ),
        carol_api.json("PUT", f"lists/{shop_list.pk}", {"name": "Mine"}),
        carol_api.json("PATCH", f"/loyalty/v2/lists/{shop_list.pk}", {"fields": []}),
        carol_api.call("DELETE", f"lists/{shop_list.pk}"),
    ]
    for response in attempts:
        assert response.status_code == 404, response.request
    assert carol_api.json(
        "DELETE",
        "/loyalty/v2/lists/members/byfield",
        {"field": "email", "value": "private@example.dk", "lists": [shop_list.pk]},
    ).json() == {"deleted": 0}
    member.refresh_from_db()
    assert member.data == {}
