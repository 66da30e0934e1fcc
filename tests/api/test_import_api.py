"""The import API as the PHP client calls it, progress, the report, and a real worker."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from members.imports import import_mail_report, import_run
from members.models import Import, Member
from tests.api.conftest import BOUNDARY, Api, php_query
from tests.conftest import LiveWorker


@pytest.fixture(autouse=True)
def import_dir(settings, tmp_path):
    settings.IMPORT_DIR = tmp_path / "imports"


def upload(api: Api, list_id: int, content: bytes, fields: dict, filename: str = "file"):
    """multipart/form-data with a file part named `file`, as [php] HLMembers::import sends."""
    lines = []
    for name, value in php_query(fields):
        lines += [f"--{BOUNDARY}", f'Content-Disposition: form-data; name="{name}"', "", value]
    head = "\r\n".join(lines).encode() + b"\r\n" if lines else b""
    body = (
        head
        + f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{filename}"\r\nContent-Type: text/csv\r\n\r\n'.encode()
        + content
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    return api.call(
        "POST",
        f"lists/{list_id}/import",
        body=body,
        content_type=f"multipart/form-data; boundary={BOUNDARY}",
    )


PHP_SAMPLE = "Jens;Hansen;jens@example.dk;Male\nÅse;Ø;aase@example.dk;Female\nx;y;bad;Male\n"


def test_the_php_client_imports_and_polls_progress(alice_api: Api, shop_list):
    response = upload(
        alice_api,
        shop_list.pk,
        PHP_SAMPLE.encode("cp1252"),
        {
            "fields_selected": ["firstname", "lastname", "email", "sex"],
            "duplicate_field": "email",
            "handle_existing": "update",
            "delimiter": ";",
            "skip_header_line": "",
            "trigger_optin": "",
            "sendErrorsTo": "",
        },
    )
    assert response.status_code == 202, response.content
    assert response.json()["status"] == "queued"
    job_id = response.json()["id"]
    path = f"lists/{shop_list.pk}/imports/{job_id}"
    assert alice_api.get(path).json()["status"] == "queued"
    import_run(import_id=job_id)
    body = alice_api.get(path).json()
    assert body["status"] == "done"
    assert (body["created"], body["error_count"], body["progress"]) == (2, 1, 100)
    assert body["errors"] == [{"row": 3, "error": "email: 'bad' is not a valid email address"}]
    assert Member.objects.get(email="aase@example.dk").data["firstname"] == "Åse"
    report = alice_api.get(path + "/report")
    assert report.status_code == 200
    assert report["Content-Type"].startswith("text/csv")
    text = b"".join(report.streaming_content).decode("utf-8-sig")
    assert "3,email: 'bad' is not a valid email address" in text


def test_an_import_without_a_file_is_a_400_naming_it(alice_api: Api, shop_list):
    response = alice_api.multipart("POST", f"lists/{shop_list.pk}/import", {"delimiter": ";"})
    assert response.status_code == 400
    assert response.json()["field"] == "file"


def test_the_first_file_part_is_taken_whatever_its_name(alice_api: Api, shop_list):
    content = b"email\nanyname@example.dk\n"
    body = (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="upload"; '
            f'filename="members.csv"\r\n\r\n'
        ).encode()
        + content
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    response = alice_api.call(
        "POST",
        f"lists/{shop_list.pk}/import",
        body=body,
        content_type=f"multipart/form-data; boundary={BOUNDARY}",
    )
    assert response.status_code == 202


def test_bad_options_are_400s_and_store_nothing(alice_api: Api, shop_list, settings):
    cases: list[tuple[dict, str]] = [
        ({"fields_selected": ["email", "nosuchfield"]}, "fields_selected"),
        ({"handle_existing": "merge"}, "handle_existing"),
        ({"duplicate_field": "firstname"}, "duplicate_field"),
        ({"sendErrorsTo": "nobody"}, "sendErrorsTo"),
        ({"skip_header_line": "maybe"}, "skip_header_line"),
    ]
    for fields, name in cases:
        response = upload(alice_api, shop_list.pk, b"email\na@example.dk\n", fields)
        assert response.status_code == 400, fields
        assert response.json()["field"] == name
    assert not Import.objects.exists()
    assert (
        not any(Path(settings.IMPORT_DIR).glob("*.csv"))
        if Path(settings.IMPORT_DIR).exists()
        else True
    )


def test_an_oversized_upload_is_refused(alice_api: Api, shop_list, settings):
    settings.IMPORT_MAX_BYTES = 100
    response = upload(alice_api, shop_list.pk, b"email\n" + b"a@example.dk\n" * 20, {})
    assert response.status_code == 400
    assert "larger than" in response.json()["error"]


def test_an_import_preview_changes_nothing(alice_api: Api, shop_list):
    response = upload(alice_api, shop_list.pk, b"email\nnew@example.dk\n", {"preview": 1})
    import_run(import_id=response.json()["id"])
    body = alice_api.get(f"lists/{shop_list.pk}/imports/{response.json()['id']}").json()
    assert (body["preview"], body["created"]) == (True, 1)
    assert not Member.objects.filter(email="new@example.dk").exists()


def test_the_error_report_is_mailed_to_send_errors_to(alice_api: Api, shop_list, smtp_server):
    response = upload(
        alice_api, shop_list.pk, b"email\nok@example.dk\nnope\n", {"sendErrorsTo": "ops@shop.dk"}
    )
    job_id = response.json()["id"]
    import_run(import_id=job_id)
    import_mail_report(import_id=job_id)
    assert len(smtp_server.messages) == 1
    recipients, message = smtp_server.messages[0]
    assert recipients == ["ops@shop.dk"]
    assert "1 rows with errors" in message["Subject"]
    attachment = next(p for p in message.walk() if p.get_filename())
    assert b"nope" in attachment.get_payload(decode=True)


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_a_queued_import(live_personas, live_worker: LiveWorker, monkeypatch):
    from accounts.services import apikey_create
    from members import services
    from members.tasks import run_import

    live_worker.route(monkeypatch, run_import)
    start = live_worker.position()
    member_list = services.list_create(account=live_personas.account_a, name="Worker list")
    api_key, secret = apikey_create(account=live_personas.account_a, name="w")
    api = Api(api_key.key, secret)
    rows = "".join(f"w{i}@example.dk,{i}\n" for i in range(500))
    response = upload(api, member_list.pk, f"email,firstname\n{rows}".encode(), {})
    assert response.status_code == 202
    path = f"lists/{member_list.pk}/imports/{response.json()['id']}"
    deadline = time.monotonic() + 60
    body = api.get(path).json()
    while body["status"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.2)
        body = api.get(path).json()
    output = live_worker.output(since=start)
    assert body["status"] == "done", (body, output)
    assert body["created"] == 500
    assert Member.objects.filter(list=member_list).count() == 500
    assert "Traceback" not in output, output
