"""Request parameters as Heyloyalty clients put them on the wire (spec §3, §6), no database.

Each request below reproduces one row of the §3.1 client x verb matrix or one §10.7 item.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile, TemporaryUploadedFile
from django.http import HttpRequest, RawPostDataException
from django.test import RequestFactory
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart

from heyloyalty.api.params import (
    FILTER_OPERATORS,
    ParamError,
    Params,
    deep_merge,
    extract_params,
    parse_filter,
    to_bool,
    to_int,
    to_list,
)

rf = RequestFactory()

MEMBERS = "/loyalty/v1/lists/7/members"
MEMBER = "/loyalty/v1/lists/7/members/ad7b7fb6-5f0b-457a-82f9-0ea186ead40e"
URLENCODED = "application/x-www-form-urlencoded"
JSON = "application/json"
TRIGGERS = ["subscribe", "update", "unsubscribe", "spamComplaint", "click", "open", "sent"]

# What libcurl sends: a boundary that itself starts with dashes.
CURL_BOUNDARY = "------------------------d74496d66958873e"


def curl_multipart(
    fields: list[tuple[str, str]], files: list[tuple[str, bytes]] | None = None
) -> bytes:
    """A multipart body as libcurl builds it from a PHP array (file parts after fields)."""
    parts = [
        f'--{CURL_BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        + value.encode()
        + b"\r\n"
        for name, value in fields
    ]
    parts += [
        f'--{CURL_BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"; filename="file"\r\n'
        "Content-Type: text/csv\r\n\r\n".encode()
        + content
        + b"\r\n"
        for name, content in files or []
    ]
    return b"".join(parts) + f"--{CURL_BOUNDARY}--\r\n".encode()


def send(method: str, path: str, body: bytes | str = b"", content_type: str = "") -> HttpRequest:
    """Any verb, any body, exactly the Content-Type given ("" = header absent)."""
    request = rf.generic(method, path, body, content_type=content_type)
    if not content_type:
        request.META.pop("CONTENT_TYPE", None)
    return request


def webhook_triggers_wire(enabled: list[str]) -> list[tuple[str, str]]:
    """[php] >=1.5.2: every name as a key with 0, then enabled names under indexes."""
    named = [(f"webhookTriggers[{name}]", "0") for name in TRIGGERS]
    indexed = [(f"webhookTriggers[{i}]", name) for i, name in enumerate(enabled)]
    return named + indexed


def expected_triggers(enabled: list[str]) -> dict[str, str]:
    return dict.fromkeys(TRIGGERS, "0") | {str(i): name for i, name in enumerate(enabled)}


# --- query strings (GET, and params outside the body) ----------------------------------------


def test_php_double_question_mark_paging_parses() -> None:
    request = rf.get(f"{MEMBERS}?perpage=50&page=1?perpage=50&page=1")

    params = extract_params(request)

    # QueryDict splits on "&" only: page=["1?perpage=50", "1"], perpage=["50"]; last wins.
    assert params["page"] == "1"
    assert to_int(params["page"], field="page", default=1) == 1
    assert to_int(params["perpage"], field="perpage", default=50) == 50


def test_first_occurrence_of_the_doubled_page_still_reads_as_its_leading_digits() -> None:
    assert to_int("1?perpage=50", field="page") == 1
    assert to_int("2?perpage=1000", field="page") == 2


def test_php_filter_with_percent_encoded_indexed_brackets_is_nested() -> None:
    request = rf.get(f"{MEMBERS}?filter%5Bemail%5D%5Beq%5D%5B0%5D=jo%40example.dk&page=1")

    params = extract_params(request)

    assert params["filter"] == {"email": {"eq": ["jo@example.dk"]}}
    assert parse_filter(params["filter"]) == {"email": {"eq": ["jo@example.dk"]}}


def test_guzzle3_append_bracket_filter_keeps_every_field_and_value() -> None:
    query = (
        "filter%5Bemail%5D%5Beq%5D%5B%5D=a%40x.dk&filter%5Bemail%5D%5Beq%5D%5B%5D=b%40x.dk"
        "&filter%5Bmobile%5D%5Bneq%5D%5B%5D=12345678&orderby=created_at"
    )

    params = extract_params(rf.get(f"{MEMBERS}?{query}"))

    assert params["filter"] == {
        "email": {"eq": ["a@x.dk", "b@x.dk"]},
        "mobile": {"neq": ["12345678"]},
    }
    assert params["orderby"] == "created_at"


def test_node_flat_query_string_is_read_as_is() -> None:
    params = extract_params(rf.get("/loyalty/v1/lists?orderby=name&order=-1&supports=email"))

    assert dict(params) == {"orderby": "name", "order": "-1", "supports": "email"}
    assert to_int(params["order"], field="order") == -1


def test_delete_sent_as_get_with_a_query_string_reads_like_any_get() -> None:
    params = extract_params(rf.get(f"{MEMBER}?obscureMemberData=1"))

    assert to_bool(params["obscureMemberData"], field="obscureMemberData") is True


# --- urlencoded bodies on every verb ---------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_urlencoded_member_body_is_parsed_for_every_writing_verb(method: str) -> None:
    body = "firstname=J%C3%B8rgen&email=j%40x.dk&interests%5B0%5D=31980&interests%5B1%5D=31981"

    params = extract_params(send(method, MEMBER, body, URLENCODED))

    assert params == {
        "firstname": "Jørgen",
        "email": "j@x.dk",
        "interests": ["31980", "31981"],
    }


def test_urlencoded_delete_body_carries_obscure_member_data() -> None:
    params = extract_params(send("DELETE", MEMBER, "obscureMemberData=1", URLENCODED))

    assert to_bool(params["obscureMemberData"], field="obscureMemberData") is True


def test_delete_without_a_body_has_only_the_query_parameters() -> None:
    params = extract_params(send("DELETE", f"{MEMBER}?reason=test"))

    assert params == {"reason": "test"}
    assert params.files == {}


def test_urlencoded_put_body_in_a_declared_non_utf8_charset_is_decoded_with_it() -> None:
    body = "firstname=J%F8rgen".encode("ascii")  # ø in Latin-1

    params = extract_params(send("PUT", MEMBER, body, f"{URLENCODED}; charset=iso-8859-1"))

    assert params["firstname"] == "Jørgen"


def test_urlencoded_post_body_is_taken_from_djangos_parsed_post() -> None:
    request = send("POST", MEMBERS, "firstname=Jo&email=jo%40x.dk", URLENCODED)
    assert request.POST["firstname"] == "Jo"  # something upstream already parsed it

    params = extract_params(request)

    assert params == {"firstname": "Jo", "email": "jo@x.dk"}


def test_put_with_params_only_in_the_query_string_and_a_trailing_slash() -> None:
    request = send(
        "PUT", f"{MEMBER}/?email=jo%40x.dk&firstname=Jo&lastlogin=1970-01-01", b"", URLENCODED
    )

    params = extract_params(request)

    assert params == {"email": "jo@x.dk", "firstname": "Jo", "lastlogin": "1970-01-01"}


def test_wordpress_post_with_params_only_in_the_query_string_and_an_empty_body() -> None:
    params = extract_params(send("POST", f"{MEMBERS}?email=jo%40x.dk&firstname=Jo"))

    assert params == {"email": "jo@x.dk", "firstname": "Jo"}


@pytest.mark.parametrize("content_type", [URLENCODED, ""], ids=["urlencoded", "no-content-type"])
def test_old_php_get_with_a_urlencoded_body_and_no_query_string(content_type: str) -> None:
    body = "page=2&perpage=1000&filter%5Bpostalcode%5D%5Bneq%5D%5B0%5D=8000"

    params = extract_params(send("GET", MEMBERS, body, content_type))

    assert to_int(params["page"], field="page") == 2
    assert to_int(params["perpage"], field="perpage") == 1000
    assert parse_filter(params["filter"]) == {"postalcode": {"neq": ["8000"]}}


def test_body_of_an_unknown_content_type_is_not_read_as_parameters() -> None:
    params = extract_params(send("PUT", f"{MEMBER}?email=a", "email=b", "text/plain"))

    assert params == {"email": "a"}


# --- JSON bodies ([m2], [bm]) ------------------------------------------------------------------


def test_magento_get_with_a_json_body_is_parsed() -> None:
    body = json.dumps({"page": 2, "perpage": 100, "orderby": "created_at", "logic": "and"})

    params = extract_params(send("GET", MEMBERS, body, JSON))

    assert params == {"page": 2, "perpage": 100, "orderby": "created_at", "logic": "and"}
    assert to_int(params["page"], field="page") == 2


def test_magento_get_with_json_content_type_and_no_body_is_empty() -> None:
    params = extract_params(send("GET", f"{MEMBERS}?page=3", b"", JSON))

    assert params == {"page": "3"}


def test_magento_json_empty_list_body_counts_as_an_empty_object() -> None:
    params = extract_params(send("DELETE", f"{MEMBER}?keep=1", "[]", JSON))

    assert params == {"keep": "1"}


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_json_object_body_keeps_its_types_on_every_verb(method: str) -> None:
    body = {"firstname": "Jo", "email": "jo@x.dk", "opt_in": True, "skipOptIn": 1, "sex": [1]}

    params = extract_params(send(method, MEMBERS, json.dumps(body), f"{JSON}; charset=utf-8"))

    assert params == body
    assert to_bool(params["opt_in"], field="opt_in") is True
    assert to_int(params["sex"], field="sex") == 1


def test_magento_v2_delete_by_field_object_body_is_read() -> None:
    body = {"field": "email", "value": "jo@x.dk", "lists": [7]}

    params = extract_params(
        send("DELETE", "/loyalty/v2/lists/members/byfield", json.dumps(body), JSON)
    )

    assert params == body


def test_json_keys_with_brackets_are_expanded() -> None:
    body = {
        "listId": 9,
        "handleDuplicates[field]": "email",
        "handleDuplicates[action]": "patch",
        "members": ["a-guid", "b-guid"],
    }

    params = extract_params(send("POST", f"{MEMBERS}/bulk/move", json.dumps(body), JSON))

    assert params == {
        "listId": 9,
        "handleDuplicates": {"field": "email", "action": "patch"},
        "members": ["a-guid", "b-guid"],
    }


def test_json_objects_with_index_keys_are_left_as_objects() -> None:
    body = {"options": {"7": "Music", "8": "Books"}}

    params = extract_params(send("POST", "/loyalty/v1/lists", json.dumps(body), JSON))

    assert params == body


@pytest.mark.parametrize("body", ['{"email": ', "{'email': 1}", b"\xff\xfe{", "[" * 100_000])
def test_bad_json_is_a_param_error(body: str | bytes) -> None:
    with pytest.raises(ParamError, match="not valid JSON"):
        extract_params(send("POST", MEMBERS, body, JSON))


@pytest.mark.parametrize("body", ["[1, 2]", '"jo@x.dk"', "null", "5"])
def test_json_body_that_is_not_an_object_is_a_param_error(body: str) -> None:
    with pytest.raises(ParamError, match="must be an object"):
        extract_params(send("PUT", MEMBER, body, JSON))


# --- multipart bodies ([php] >=1.3.2 POST, import, webhooktrigger) ---------------------------


def test_php_multipart_post_upsert_nests_the_member_fields() -> None:
    body = curl_multipart(
        [
            ("unique_field", "email"),
            ("member[email]", "jo@x.dk"),
            ("member[firstname]", "Jo"),
            ("member[interests][0]", "31980"),
            ("member[interests][1]", "31981"),
        ]
    )
    request = send(
        "POST", f"{MEMBERS}/upsert", body, f"multipart/form-data; boundary={CURL_BOUNDARY}"
    )

    params = extract_params(request)

    assert params == {
        "unique_field": "email",
        "member": {"email": "jo@x.dk", "firstname": "Jo", "interests": ["31980", "31981"]},
    }


def test_php_multipart_post_reuses_what_django_already_parsed() -> None:
    data = {"name": "Customers", "file": SimpleUploadedFile("a.csv", b"a;b\n", "text/csv")}
    request = rf.post("/loyalty/v1/lists/7/import", data)  # Django's own multipart encoding
    uploaded = request.FILES["file"]  # the stream is consumed now; reading it again would fail

    params = extract_params(request)

    assert params == {"name": "Customers"}
    assert params.files["file"] is uploaded


@pytest.mark.parametrize(
    "content_type",
    [f"multipart/form-data; boundary={CURL_BOUNDARY}", "multipart/form-data"],
    ids=["with-boundary", "bare-header"],
)
@pytest.mark.parametrize("method", ["PUT", "POST"])
def test_multipart_body_is_parsed_with_or_without_a_boundary_parameter(
    method: str, content_type: str
) -> None:
    body = curl_multipart([("name", "Customers"), ("fields[0][name]", "firstname")])

    params = extract_params(send(method, "/loyalty/v1/lists/7", body, content_type))

    assert params == {"name": "Customers", "fields": [{"name": "firstname"}]}


def test_multipart_put_in_djangos_own_encoding_is_parsed() -> None:
    body = encode_multipart(BOUNDARY, {"member[email]": "jo@x.dk", "fields_selected[]": ["a", "b"]})

    params = extract_params(send("PUT", MEMBER, body, MULTIPART_CONTENT))

    assert params == {"member": {"email": "jo@x.dk"}, "fields_selected": ["a", "b"]}


def test_multipart_body_without_a_boundary_anywhere_is_a_param_error() -> None:
    body = b'Content-Disposition: form-data; name="x"\r\n\r\n1\r\n'

    with pytest.raises(ParamError, match="boundary"):
        extract_params(send("PUT", MEMBER, body, "multipart/form-data"))


def test_malformed_multipart_boundary_parameter_is_a_param_error() -> None:
    body = curl_multipart([("name", "x")])

    with pytest.raises(ParamError, match="multipart"):
        extract_params(send("PUT", MEMBER, body, "multipart/form-data; boundary=\x01"))


def test_empty_multipart_body_gives_no_parameters() -> None:
    params = extract_params(send("PATCH", f"{MEMBER}?a=1", b"", "multipart/form-data"))

    assert params == {"a": "1"}


@pytest.fixture
def tiny_memory_uploads(settings: Any) -> None:
    """Make any file part bigger than 16 bytes go to a temporary file."""
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 16


@pytest.mark.usefixtures("tiny_memory_uploads")
@pytest.mark.parametrize(
    ("method", "content_type"),
    [
        ("POST", "multipart/form-data"),  # [php] import: bare header
        ("POST", f"multipart/form-data; boundary={CURL_BOUNDARY}"),
        ("PUT", f"multipart/form-data; boundary={CURL_BOUNDARY}"),
        ("PUT", "multipart/form-data"),
    ],
)
def test_multipart_file_part_is_returned_as_an_upload_streamed_to_disk(
    method: str, content_type: str
) -> None:
    csv = b"jo@x.dk;Jo;Male\n" * 256
    body = curl_multipart(
        [("fields_selected[0]", "email"), ("fields_selected[1]", "firstname")], [("file", csv)]
    )
    request = send(method, "/loyalty/v1/lists/7/import", body, content_type)

    params = extract_params(request)

    upload = params.files["file"]
    try:
        assert isinstance(upload, TemporaryUploadedFile)
        assert os.path.getsize(upload.temporary_file_path()) == len(csv)
        assert params == {"fields_selected": ["email", "firstname"]}
        # The body was streamed, never buffered into request.body.
        with pytest.raises(RawPostDataException):
            _ = request.body
    finally:
        upload.close()


def test_first_file_part_is_found_whatever_its_name() -> None:
    body = curl_multipart([("delimiter", ";")], [("members.csv", b"a\n"), ("other", b"b\n")])

    params = extract_params(send("POST", "/loyalty/v1/lists/7/import", body, "multipart/form-data"))

    name, first = next(iter(params.files.items()))
    assert name == "members.csv"
    assert first.read() == b"a\n"


def test_repeated_file_part_name_keeps_the_last_file_like_any_scalar() -> None:
    body = curl_multipart([], [("file", b"old\n"), ("file", b"new\n")])

    params = extract_params(send("PUT", "/loyalty/v1/lists/7/import", body, "multipart/form-data"))

    assert list(params.files) == ["file"]
    assert params.files["file"].read() == b"new\n"


def test_second_call_on_a_streamed_request_returns_the_first_result() -> None:
    body = curl_multipart([("name", "x")])
    request = send("PUT", MEMBER, body, "multipart/form-data")

    first = extract_params(request)
    second = extract_params(request)

    assert second == {"name": "x"}
    assert second is first


# --- merging, expansion, limits ----------------------------------------------------------------


def test_body_values_win_over_the_query_string_and_nested_dicts_merge() -> None:
    request = send(
        "PUT",
        f"{MEMBER}?member%5Bfirstname%5D=Jo&member%5Bemail%5D=old%40x.dk&page=1",
        "member%5Bemail%5D=new%40x.dk&page=2",
        URLENCODED,
    )

    params = extract_params(request)

    assert params == {"member": {"firstname": "Jo", "email": "new@x.dk"}, "page": "2"}


def test_deep_merge_returns_a_new_dict_and_lets_non_dicts_replace() -> None:
    base = {"a": {"x": 1, "y": [1]}, "b": 1}
    override = {"a": {"y": [2], "z": 3}, "b": {"c": 1}}

    merged = deep_merge(base, override)

    assert merged == {"a": {"x": 1, "y": [2], "z": 3}, "b": {"c": 1}}
    assert base == {"a": {"x": 1, "y": [1]}, "b": 1}


@pytest.mark.parametrize(
    ("content_type", "encode"),
    [
        (URLENCODED, lambda pairs: "&".join(f"{k}={v}" for k, v in pairs)),
        (f"multipart/form-data; boundary={CURL_BOUNDARY}", curl_multipart),
    ],
    ids=["urlencoded-put", "multipart-post"],
)
def test_webhook_triggers_mixed_encoding_keeps_names_and_indexes(
    content_type: str, encode: Any
) -> None:
    pairs = [("url", "https://shop.test/hook"), *webhook_triggers_wire(["subscribe", "sent"])]
    method = "PUT" if content_type == URLENCODED else "POST"

    params = extract_params(
        send(method, "/loyalty/v1/lists/7/webhooks/3", encode(pairs), content_type)
    )

    assert params["url"] == "https://shop.test/hook"
    assert params["webhookTriggers"] == expected_triggers(["subscribe", "sent"])


def test_webhook_triggers_with_only_indexes_become_a_list() -> None:
    body = "webhookTriggers%5B%5D=subscribe&webhookTriggers%5B%5D=open"

    params = extract_params(send("PUT", "/loyalty/v1/lists/7/webhooks/3", body, URLENCODED))

    assert params["webhookTriggers"] == ["subscribe", "open"]


@pytest.mark.parametrize("wire", ["sex%5B%5D=2", "sex%5B0%5D=2"], ids=["append", "indexed"])
def test_choice_value_sent_as_an_array_reads_as_one_option(wire: str) -> None:
    params = extract_params(send("PUT", MEMBER, f"{wire}&country=53", URLENCODED))

    assert params["sex"] == ["2"]
    assert to_int(params["sex"], field="sex") == 2
    assert to_int(params["country"], field="country") == 53


def test_choice_value_with_two_options_is_a_param_error() -> None:
    with pytest.raises(ParamError, match="sex takes a single value") as caught:
        to_int(["1", "2"], field="sex")

    assert caught.value.field == "sex"


def test_list_definition_fields_become_lists_in_index_order() -> None:
    body = (
        "name=Customers&fields[1][name]=interests&fields[1][type]=custom&fields[1][format]=multi"
        "&fields[1][options][1][label]=Hund&fields[1][options][0][label]=Kat"
        "&fields[0][name]=firstname&fields[0][type]=fixed"
    )

    params = extract_params(send("PUT", "/loyalty/v1/lists/7", body, URLENCODED))

    assert params["fields"] == [
        {"name": "firstname", "type": "fixed"},
        {
            "name": "interests",
            "type": "custom",
            "format": "multi",
            "options": [{"label": "Kat"}, {"label": "Hund"}],
        },
    ]


def test_sparse_indexes_become_a_list_in_index_order() -> None:
    params = extract_params(
        rf.get("/x?fields%5B3%5D%5Boptions%5D%5B0%5D%5Blabel%5D=Kat&fields%5B1%5D=a")
    )

    assert params["fields"] == ["a", {"options": [{"label": "Kat"}]}]


def test_append_after_an_explicit_index_continues_after_it() -> None:
    params = extract_params(rf.get("/x?f%5B4%5D=a&f%5B%5D=b"))

    assert params["f"] == ["a", "b"]
    params = extract_params(rf.get("/y?g%5B4%5D=a&g%5Bx%5D=b&g%5B%5D=c"))
    assert params["g"] == {"4": "a", "x": "b", "5": "c"}


def test_later_values_replace_earlier_ones_even_across_shapes() -> None:
    params = extract_params(rf.get("/x?a=1&a%5Bb%5D=2&c%5Bd%5D=3&c=4&e=5&e=6"))

    assert params == {"a": {"b": "2"}, "c": "4", "e": "6"}


def test_malformed_bracket_keys_stay_literal_or_drop_trailing_text() -> None:
    params = extract_params(rf.get("/x?a%5Bb=1&%5Bc%5D=2&d%5Be%5Dtail=3&f%5Bg%5D%5Bh=4"))

    assert params == {"a[b": "1", "[c]": "2", "d": {"e": "3"}, "f": {"g": "4"}}


def test_too_deeply_nested_key_is_a_param_error() -> None:
    with pytest.raises(ParamError, match="nested too deeply") as caught:
        extract_params(rf.get("/x?a" + "%5B%5D" * 70 + "=1"))

    assert caught.value.field == "a"


def test_more_fields_than_django_allows_is_a_param_error(settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 5
    body = "&".join(f"fields_selected%5B%5D=c{i}" for i in range(6))

    with pytest.raises(ParamError, match="too many parameters"):
        extract_params(send("PUT", "/loyalty/v1/lists/7", body, URLENCODED))


def test_body_over_djangos_memory_limit_is_a_param_error(settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10
    with pytest.raises(ParamError, match="too large"):
        extract_params(send("POST", MEMBERS, json.dumps({"email": "jo@x.dk"}), JSON))


def test_params_is_a_dict_with_files() -> None:
    params = Params({"a": 1})

    assert params == {"a": 1}
    assert params.files == {}


# --- coercion ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [1, "1", True, "true", "TRUE", "on", "yes", " 1 ", ["1"]])
def test_to_bool_reads_true(value: Any) -> None:
    assert to_bool(value, field="trigger_optin") is True


@pytest.mark.parametrize("value", [0, "0", "", False, "false", None, "off", "no", []])
def test_to_bool_reads_false_including_phps_multipart_empty_string(value: Any) -> None:
    assert to_bool(value, field="skip_header_line") is False


@pytest.mark.parametrize("value", [2, "2", "maybe", 1.0, {"a": 1}, ["1", "0"]])
def test_to_bool_rejects_anything_else_naming_the_field(value: Any) -> None:
    with pytest.raises(ParamError, match="skip_header_line") as caught:
        to_bool(value, field="skip_header_line")

    assert caught.value.field == "skip_header_line"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(50, 50), ("50", 50), ("50?x", 50), (" 7", 7), ("-1", -1), ("+3", 3), (2.0, 2), (["9"], 9)],
)
def test_to_int_reads_leading_digits(value: Any, expected: int) -> None:
    assert to_int(value, field="perpage") == expected


@pytest.mark.parametrize("value", [True, False, "abc", "?1", "", "1" * 19, {"a": 1}, float("nan")])
def test_to_int_rejects_bools_and_non_numbers_naming_the_field(value: Any) -> None:
    with pytest.raises(ParamError, match="perpage") as caught:
        to_int(value, field="perpage")

    assert caught.value.field == "perpage"
    assert caught.value.message == str(caught.value)


@pytest.mark.parametrize("value", [None, "", "  ", []])
def test_to_int_gives_the_default_when_the_value_is_missing(value: Any) -> None:
    assert to_int(value, field="page", default=1) == 1


def test_to_int_without_a_default_requires_a_value() -> None:
    with pytest.raises(ParamError, match="page is required"):
        to_int(None, field="page")


def test_to_int_with_a_default_still_rejects_garbage() -> None:
    with pytest.raises(ParamError, match="page must be an integer"):
        to_int("abc", field="page", default=1)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("31980", ["31980"]),
        (31980, [31980]),
        (["a", "b"], ["a", "b"]),
        (("a",), ["a"]),
        ({"1": "b", "0": "a"}, ["a", "b"]),
        ({1: "b", 0: "a"}, ["a", "b"]),
        ({}, []),
        ({"label": "Kat"}, [{"label": "Kat"}]),
        (None, []),
    ],
)
def test_to_list_accepts_every_list_encoding(value: Any, expected: list[Any]) -> None:
    assert to_list(value) == expected


# --- member filter (§6) ------------------------------------------------------------------------


def test_filter_as_a_json_string_in_a_json_body_is_parsed() -> None:
    body = {"page": 1, "filter": json.dumps({"email": {"eq": ["jo@x.dk"]}, "mobile": {"neq": 5}})}

    params = extract_params(send("GET", MEMBERS, json.dumps(body), JSON))

    assert parse_filter(params["filter"]) == {
        "email": {"eq": ["jo@x.dk"]},
        "mobile": {"neq": ["5"]},
    }


@pytest.mark.parametrize(
    "fragment",
    [
        "[email][eq][]=jo@x.dk&[firstname][sw][0]=J",
        "filter[email][eq][]=jo@x.dk&filter[firstname][sw][0]=J",
        "email[eq][]=jo%40x.dk&firstname[sw]=J",
        "%5Bemail%5D%5Beq%5D%5B%5D=jo%40x.dk&%5Bfirstname%5D%5Bsw%5D%5B%5D=J",
    ],
)
def test_filter_as_a_bracket_fragment_string_is_parsed(fragment: str) -> None:
    assert parse_filter(fragment) == {"email": {"eq": ["jo@x.dk"]}, "firstname": {"sw": ["J"]}}


def test_segment_filters_fragment_strips_its_own_parameter_name() -> None:
    assert parse_filter("filters[firstname][eq][0]=test", field="filters") == {
        "firstname": {"eq": ["test"]}
    }


def test_every_documented_filter_operator_is_accepted() -> None:
    value = {"f": {op: ["1"] for op in sorted(FILTER_OPERATORS)}}

    parsed = parse_filter(value)

    assert set(parsed["f"]) == FILTER_OPERATORS
    assert parsed["f"]["eq"] == ["1"]


def test_unknown_filter_operator_is_a_param_error_naming_it() -> None:
    params = extract_params(rf.get(f"{MEMBERS}?filter%5Bemail%5D%5Blike%5D%5B%5D=jo"))

    with pytest.raises(ParamError, match="'like'") as caught:
        parse_filter(params["filter"])

    assert caught.value.field == "filter[email]"


def test_empty_operators_ignore_any_value_sent() -> None:
    assert parse_filter({"birthdate": {"ie": "", "nie": ["x"]}}) == {
        "birthdate": {"ie": [], "nie": []}
    }


def test_filter_values_are_strings_whatever_json_type_they_came_as() -> None:
    assert parse_filter({"newsletter": {"eq": [True, 1, "1", 1.5]}}) == {
        "newsletter": {"eq": ["1", "1", "1", "1.5"]}
    }


@pytest.mark.parametrize("value", [None, "", "  ", [], {}, "[]", "null"])
def test_missing_or_empty_filter_means_no_conditions(value: Any) -> None:
    assert parse_filter(value) == {}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (["jo@x.dk"], "object keyed by field name"),
        ('"jo@x.dk"', "object keyed by field name"),
        ({"email": "jo@x.dk"}, "must map operators to values"),
        ({"email": ["eq"]}, "must map operators to values"),
        ({"email": {"eq": [{"a": 1}]}}, "strings or numbers"),
        ({"email": {"eq": [None]}}, "strings or numbers"),
    ],
)
def test_malformed_filter_is_a_param_error(value: Any, message: str) -> None:
    with pytest.raises(ParamError, match=message):
        parse_filter(value)
