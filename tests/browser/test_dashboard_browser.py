import pytest
from playwright.sync_api import expect

from members import services
from tests.conftest import Personas

pytestmark = pytest.mark.browser


def sign_in(page, live_server, personas: Personas) -> None:
    page.goto(f"{live_server.url}/signin/")
    page.get_by_label("Email").fill("alice@a.test")
    page.get_by_label("Password").fill(personas.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Welcome, Alice")).to_be_visible()


def test_the_segment_builder_counts_live_as_conditions_change(
    page, live_server, live_personas: Personas
):
    member_list = services.list_create(account=live_personas.account_a, name="Kunder")
    for email, city in [("a@x.dk", "Vejle"), ("b@x.dk", "Vejle"), ("c@x.dk", "Odense")]:
        services.member_create(member_list=member_list, values={"email": email, "city": city})
    sign_in(page, live_server, live_personas)
    page.goto(f"{live_server.url}/lists/{member_list.pk}/segments/new/")
    count = page.locator("#segment-count")
    expect(count).to_have_text("3")  # no condition: the whole list
    page.get_by_role("button", name="Add condition").click()
    page.get_by_label("Field").select_option("city")
    page.get_by_label("Condition").select_option("eq")
    page.get_by_label("Value").fill("Vejle")
    expect(count).to_have_text("2")
    page.get_by_label("Name").fill("Vejle")
    page.get_by_role("button", name="Save segment").click()
    expect(page.get_by_role("link", name="Vejle")).to_be_visible()


def test_the_import_wizard_shows_the_preview_of_a_real_upload(
    page, live_server, live_personas: Personas, tmp_path, settings
):
    settings.IMPORT_DIR = tmp_path / "imports"
    from members.imports import import_run
    from members.models import Import

    member_list = services.list_create(account=live_personas.account_a, name="Import here")
    sign_in(page, live_server, live_personas)
    page.goto(f"{live_server.url}/lists/{member_list.pk}/import/")
    csv_file = tmp_path / "members.csv"
    csv_file.write_bytes("email;firstname\nny@x.dk;Ærtebjerg\nbad;X\n".encode("cp1252"))
    page.get_by_label("CSV file").set_input_files(str(csv_file))
    page.get_by_role("button", name="Upload and preview").click()
    expect(page.locator("progress")).to_be_visible()
    import_run(import_id=Import.objects.get(list=member_list).pk)  # what the worker does
    expect(page.get_by_text("Would be added")).to_be_visible(timeout=10000)  # the page polls
    expect(
        page.get_by_role("cell", name="email: 'bad' is not a valid email address")
    ).to_be_visible()
