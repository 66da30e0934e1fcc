"""Imports end to end through the service: the file, the staging table, the merge."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from members import services
from members.fields import FieldSpec
from members.imports import ImportOptions, import_create, import_run
from members.models import Import, ImportStatus, Member, MemberStatus
from tests.conftest import Personas


@pytest.fixture
def shop(personas: Personas):
    return services.list_create(
        account=personas.account_a,
        name="Shop",
        fields=[
            FieldSpec("points", "number", "Points"),
            FieldSpec("interests", "multi", "Interests", options=["Music", "Books"]),
        ],
    )


@pytest.fixture(autouse=True)
def import_dir(settings, tmp_path):
    settings.IMPORT_DIR = tmp_path / "imports"


def run(member_list, content: bytes, **options) -> Import:
    preview = options.pop("preview", False)
    job = import_create(
        member_list=member_list,
        upload=io.BytesIO(content),
        options=ImportOptions(**options),
        preview=preview,
    )
    import_run(import_id=job.pk)
    job.refresh_from_db()
    return job


def report(job: Import) -> list[list[str]]:
    with Path(job.report).open(encoding="utf-8") as handle:
        return list(csv.reader(handle))


def test_a_windows_1252_semicolon_file_keeps_danish_letters(shop):
    content = (
        "email;firstname;lastname;city\n"
        "soren@example.dk;Søren;Ærø;Århus\n"
        "aase@example.dk;Åse;Møller;Næstved\n"
    ).encode("cp1252")
    job = run(shop, content)
    assert job.status == ImportStatus.DONE, job.failure
    assert (job.created, job.updated, job.error_count) == (2, 0, 0)
    soren = Member.objects.get(list=shop, email="soren@example.dk")
    assert soren.data == {"firstname": "Søren", "lastname": "Ærø", "city": "Århus"}
    assert soren.imported


def test_a_bom_prefixed_utf8_file_imports(shop):
    content = "\ufeffEmail,First name\nbom@example.dk,Bjørn\n".encode()
    job = run(shop, content)
    assert job.created == 1
    assert Member.objects.get(email="bom@example.dk").data["firstname"] == "Bjørn"


def test_bad_rows_are_reported_by_number_and_good_rows_imported(shop):
    content = (
        b"email,points,birthdate,sex\n"
        b"good1@example.dk,10,1980-01-31,Male\n"
        b"not-an-email,1,,\n"
        b"good2@example.dk,many,,\n"
        b"good3@example.dk,3,31/12/1980,\n"
        b"good4@example.dk,4,,Robot\n"
        b",,,\n"
        b"good5@example.dk,5,,2\n"
    )
    job = run(shop, content)
    assert job.status == ImportStatus.DONE
    assert job.created == 2
    assert job.error_count == 4
    rows = {int(r[0]): r[1] for r in report(job)[1:]}
    assert set(rows) == {3, 4, 5, 6}
    assert "email" in rows[3] and "points" in rows[4]
    assert "birthdate" in rows[5] and "sex" in rows[6]
    assert [e["row"] for e in job.errors] == [3, 4, 5, 6]
    good1 = Member.objects.get(email="good1@example.dk")
    assert good1.data == {"points": 10, "birthdate": "1980-01-31", "sex": 1}
    assert Member.objects.get(email="good5@example.dk").data["sex"] == 2


def test_the_php_sample_without_a_header_uses_fields_selected(shop):
    content = b"Jens;Hansen;jens@example.dk;Male\nMia;Berg;mia@example.dk;Female\n"
    job = run(
        shop,
        content,
        fields_selected=["firstname", "lastname", "email", "sex"],
        has_header=False,
        delimiter=";",
    )
    assert job.created == 2
    assert Member.objects.get(email="mia@example.dk").data == {
        "firstname": "Mia",
        "lastname": "Berg",
        "sex": 2,
    }


def test_the_last_row_for_an_email_wins_and_earlier_ones_are_skipped(shop):
    content = b"email,points\nTwin@example.dk,1\nother@example.dk,2\ntwin@example.dk ,3\n"
    job = run(shop, content)
    assert (job.created, job.skipped) == (2, 1)
    assert Member.objects.get(email="twin@example.dk").data["points"] == 3
    assert ["2", "skipped: the same email again at row 4"] in report(job)


def test_existing_members_are_updated_but_never_resubscribed_silently(shop):
    kept = services.member_create(
        member_list=shop, values={"email": "gone@example.dk", "points": 1, "city": "Vejle"}
    )
    Member.objects.filter(pk=kept.pk).update(status=MemberStatus.UNSUBSCRIBED)
    job = run(shop, b"email,points\ngone@example.dk,7\nnew@example.dk,1\n")
    assert (job.created, job.updated, job.resubscribed) == (1, 1, 0)
    kept.refresh_from_db()
    assert kept.status == MemberStatus.UNSUBSCRIBED
    assert kept.data == {"points": 7, "city": "Vejle"}


def test_resubscribe_must_be_asked_for(shop):
    kept = services.member_create(member_list=shop, values={"email": "back@example.dk"})
    Member.objects.filter(pk=kept.pk).update(status=MemberStatus.BOUNCED)
    job = run(shop, b"email\nback@example.dk\n", resubscribe=True)
    assert job.resubscribed == 1
    kept.refresh_from_db()
    assert kept.status == MemberStatus.ACTIVE


def test_handle_existing_ignore_and_update_only(shop):
    services.member_create(member_list=shop, values={"email": "old@example.dk", "points": 1})
    content = b"email,points\nold@example.dk,9\nfresh@example.dk,9\n"
    ignore = run(shop, content, handle_existing="ignore")
    assert (ignore.created, ignore.updated) == (1, 0)
    assert Member.objects.get(email="old@example.dk").data["points"] == 1
    only = run(
        shop, b"email,points\nold@example.dk,5\nnever@example.dk,5\n", handle_existing="updateOnly"
    )
    assert (only.created, only.updated) == (0, 1)
    assert not Member.objects.filter(email="never@example.dk").exists()


def test_empty_field_clears_what_the_file_does_not_hold(shop):
    services.member_create(
        member_list=shop, values={"email": "e@example.dk", "city": "Odense", "points": 2}
    )
    run(shop, b"email,points\ne@example.dk,3\n", empty_field=True)
    assert Member.objects.get(email="e@example.dk").data == {"points": 3}


def test_a_preview_counts_without_changing_anything(shop):
    kept = services.member_create(member_list=shop, values={"email": "p@example.dk"})
    Member.objects.filter(pk=kept.pk).update(status=MemberStatus.UNSUBSCRIBED)
    job = run(shop, b"email\np@example.dk\nq@example.dk\nbad\n", preview=True)
    assert job.status == ImportStatus.DONE
    assert (job.created, job.updated, job.resubscribed, job.error_count) == (1, 1, 1, 1)
    assert Member.objects.filter(list=shop).count() == 1


def test_multi_values_and_a_date_format(shop):
    job = run(
        shop,
        b"email;interests;birthdate\ni@example.dk;Music, Books;31-12-1980\n",
        date_format="d-m-Y",
    )
    assert job.error_count == 0, job.errors
    assert Member.objects.get(email="i@example.dk").data == {
        "interests": [1, 2],
        "birthdate": "1980-12-31",
    }


def test_a_file_that_is_not_csv_fails_with_a_clear_message(shop):
    job = run(shop, b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
    assert job.status == ImportStatus.FAILED
    assert "PNG" in job.failure


def test_a_file_without_email_or_mobile_column_fails_clearly(shop):
    job = run(shop, b"firstname,lastname\nAnna,Berg\n", has_header=True)
    assert job.status == ImportStatus.FAILED
    assert "email" in job.failure


def test_a_second_delivery_of_the_task_changes_nothing(shop):
    job = run(shop, b"email\nonce@example.dk\n")
    import_run(import_id=job.pk)
    assert Member.objects.filter(email="once@example.dk").count() == 1


def test_duplicates_policy_allow_keeps_both_file_rows_apart_from_key(personas: Personas):
    from members.models import Duplicates

    loose = services.list_create(
        account=personas.account_a, name="Loose", duplicates=Duplicates.ALLOW
    )
    job = run(loose, b"email,mobile\na@example.dk,11111111\nb@example.dk,11111111\n")
    assert job.created == 2
