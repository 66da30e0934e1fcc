from members.models import Field, List
from tests.api.conftest import Api


def test_get_lists_is_a_top_level_array_of_id_and_name(alice_api: Api, shop_list):
    body = alice_api.get("lists").json()
    assert isinstance(body, list)
    assert body[0]["id"] == shop_list.pk
    assert body[0]["name"] == "Customers"
    assert body[0]["members"] == 0
    assert "code" not in body[0]


def test_a_list_shows_fields_keyed_by_name_with_options_by_id(alice_api: Api, shop_list):
    body = alice_api.get(f"lists/{shop_list.pk}").json()
    assert body["date_format"] == "dd-mm-yyyy"
    assert body["duplicates"] == "disallow"
    fields = body["fields"]
    assert isinstance(fields, dict)
    assert fields["firstname"]["type"] == "fixed"
    assert fields["sex"]["options"] == {"1": "Male", "2": "Female"}
    assert fields["interests"]["format"] == "multi"
    assert fields["interests"]["options"] == {"1": "Music", "2": "Books", "3": "Film"}
    assert isinstance(fields["interests"]["type_id"], int)
    assert fields["points"]["required_in_shop"] is False


def test_php_client_creates_a_list_with_multipart_fields(alice_api: Api):
    response = alice_api.multipart(
        "POST",
        "lists",
        {
            "name": "Newsletter",
            "country_id": 1,
            "duplicates": "allow_mobile",
            "fields": [
                {"type": "fixed", "name": "firstname"},
                {
                    "type": "custom",
                    "format": "choice",
                    "label": "Pet",
                    "options": [{"label": "Kat"}, {"label": "Hund"}],
                },
            ],
        },
    )
    assert response.status_code == 201, response.content
    created = List.objects.get(pk=response.json()["id"])
    assert created.duplicates == "allow_mobile"
    pet = Field.objects.get(list=created, name="pet")
    assert [o.label for o in pet.options.all()] == ["Kat", "Hund"]


def test_magento_creates_a_list_with_json(alice_api: Api):
    response = alice_api.json("POST", "lists", {"name": "Magento", "duplicates": "disallow"})
    assert response.status_code == 201
    assert isinstance(response.json()["id"], int)


def test_an_empty_list_create_is_a_400_with_error(alice_api: Api):
    response = alice_api.multipart("POST", "lists", {})
    assert response.status_code == 400
    assert "error" in response.json()
    assert response.json()["field"] == "name"


def test_a_bad_duplicates_value_names_the_field(alice_api: Api):
    response = alice_api.json("POST", "lists", {"name": "X", "duplicates": "sometimes"})
    assert response.status_code == 400
    assert response.json()["field"] == "duplicates"
    assert not List.objects.filter(name="X").exists()


def test_put_replaces_the_custom_fields(alice_api: Api, shop_list):
    response = alice_api.form(
        "PUT",
        f"lists/{shop_list.pk}",
        {
            "name": "Renamed",
            "fields": [{"type": "custom", "name": "points", "format": "number", "label": "Points"}],
        },
    )
    assert response.status_code == 200, response.content
    names = set(Field.objects.filter(list=shop_list).values_list("name", flat=True))
    assert "points" in names and "interests" not in names and "firstname" in names
    shop_list.refresh_from_db()
    assert shop_list.name == "Renamed"


def test_v2_patch_adds_fields_and_leaves_the_rest(alice_api: Api, shop_list):
    response = alice_api.form(
        "PATCH",
        f"/loyalty/v2/lists/{shop_list.pk}",
        {
            "fields": [{"type": "custom", "name": "vip", "format": "boolean", "label": "VIP"}],
        },
    )
    assert response.status_code == 200, response.content
    names = set(Field.objects.filter(list=shop_list).values_list("name", flat=True))
    assert {"vip", "interests", "points"} <= names


def test_changing_a_custom_fields_format_is_refused(alice_api: Api, shop_list):
    response = alice_api.form(
        "PATCH",
        f"/loyalty/v2/lists/{shop_list.pk}",
        {
            "fields": [{"type": "custom", "name": "points", "format": "text"}],
        },
    )
    assert response.status_code == 400
    assert "cannot change" in response.json()["error"]


def test_delete_list_is_204_and_then_404(alice_api: Api, shop_list):
    assert alice_api.call("DELETE", f"lists/{shop_list.pk}").status_code == 204
    response = alice_api.get(f"lists/{shop_list.pk}")
    assert response.status_code == 404
    assert response.json() == {"code": 404, "message": "Not Found"}


def test_countries_list_denmark_as_1(alice_api: Api):
    countries = alice_api.get("lists/countries").json()
    assert {"id": 1, "name": "Denmark", "code": "DK"} in countries


def test_node_client_reads_lists_with_an_iso_timestamp(alice_api: Api, shop_list):
    from django.utils import timezone

    now = timezone.now()
    iso = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    assert alice_api.get(f"lists/{shop_list.pk}", timestamp=iso).status_code == 200
