import json

from django.test import Client
from django.urls import URLPattern
from drf_spectacular.validation import validate_schema

from heyloyalty.api import urls as api_urls

METHODS = ("get", "post", "put", "patch", "delete")


def api_operations() -> set[tuple[str, str]]:
    """(view name, method) for every API route and every method its view implements."""
    found = set()
    for pattern in api_urls.urlpatterns:
        assert isinstance(pattern, URLPattern)
        view = getattr(pattern.callback, "view_class", None)
        if view is None:
            continue  # the JSON 404 catch-all
        for method in METHODS:
            if hasattr(view, method) and method in view.http_method_names:
                found.add((view.__name__, method))
    return found


def test_the_schema_validates_and_lists_every_operation(client: Client):
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    schema = json.loads(response.content)
    validate_schema(schema)
    operations = [op for path in schema["paths"].values() for op in path.values()]
    assert len(operations) == len(api_operations())
    assert all(op.get("security") for op in operations)
    assert "heyloyaltySignature" in schema["components"]["securitySchemes"]


def test_the_docs_page_renders_without_a_cdn(client: Client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.text
    assert "swagger-ui" in html
    assert "drf_spectacular_sidecar" in html
    assert "cdn" not in html.lower()
