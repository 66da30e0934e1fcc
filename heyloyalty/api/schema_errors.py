"""Errors any API operation can answer, added to every operation in the schema.

Whatever an operation documents itself, the signature check can refuse it (401), a
read-only key can be refused a write (403), a key over its rate is asked to wait (429)
and an outage of the database or Redis answers 503 (monitoring/outage.py); all in the
``{"code", "message"}`` shape of heyloyalty/api/errors.py. Clients (and schemathesis, in
CI) can rely on the schema listing every answer."""

from __future__ import annotations

from typing import Any

CODED = {
    "type": "object",
    "properties": {"code": {"type": "integer"}, "message": {"type": "string"}},
    "required": ["code", "message"],
}
COMMON = {
    "401": "The signature is missing, wrong or too old",
    "403": "A read-only key asked to write",
    "429": "Too many requests for this key; see Retry-After",
    "503": "The database or Redis is away for a moment; see Retry-After",
}


def add_common_errors(result: dict[str, Any], **_: Any) -> dict[str, Any]:
    """drf-spectacular postprocessing hook."""
    result.setdefault("components", {}).setdefault("schemas", {})["CodedError"] = CODED
    reference = {"$ref": "#/components/schemas/CodedError"}
    for path in result.get("paths", {}).values():
        for operation in path.values():
            if not isinstance(operation, dict) or not operation.get("security"):
                continue
            responses = operation.setdefault("responses", {})
            for status, description in COMMON.items():
                responses.setdefault(
                    status,
                    {
                        "description": description,
                        "content": {"application/json": {"schema": reference}},
                    },
                )
    return result
