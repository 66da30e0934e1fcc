from django.test import Client
from django.urls import reverse

from tests.conftest import Personas


def test_healthz_answers_200_without_a_session(client: Client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_an_unknown_url_is_a_404_without_a_stack_trace(client: Client, settings):
    settings.DEBUG = False
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    assert "Page not found" in response.text
    assert "Traceback" not in response.text
    assert "urlpatterns" not in response.text


def test_the_dashboard_speaks_danish(client: Client, personas: Personas):
    client.force_login(personas.alice)
    client.post(reverse("set_language"), {"language": "da", "next": "/"})
    page = client.get(reverse("accounts:home"))
    assert 'lang="da"' in page.text
    assert "Velkommen" in page.text
    assert "Medlemmer" in page.text


def test_the_home_page_shows_an_empty_state_without_lists(client: Client, personas: Personas):
    client.force_login(personas.alice)
    page = client.get(reverse("accounts:home"))
    assert "No lists yet" in page.text


def test_staff_go_to_the_admin_panel(client: Client, personas: Personas):
    client.force_login(personas.mallory)
    response = client.get(reverse("accounts:home"))
    assert response["Location"] == reverse("admin:index")
