"""Lists, fields and members as Heyloyalty's API shows them (heyloyalty-api.md §5)."""

from __future__ import annotations

import zoneinfo
from datetime import datetime
from typing import Any

from members.models import Field, FieldFormat, List, Member
from members.schema import ListSchema

FORMAT_TYPE_IDS = {
    FieldFormat.TEXT: 1,
    FieldFormat.NUMBER: 2,
    FieldFormat.DATE: 3,
    FieldFormat.BOOLEAN: 4,
    FieldFormat.CHOICE: 5,
    FieldFormat.MULTI: 6,
    FieldFormat.PASSWORD: 7,
    FieldFormat.SHOP: 8,
}
EMPTY_DATE = "0000-00-00"


def stamp(moment: datetime | None, tz: str) -> str | None:
    """``Y-m-d H:i:s`` in the list's time zone, as Heyloyalty writes times."""
    if moment is None:
        return None
    return moment.astimezone(zoneinfo.ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M:%S")


def field_json(field: Field, options: dict[int, str]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": field.pk,
        "type": field.kind,
        "type_id": FORMAT_TYPE_IDS.get(FieldFormat(field.format), 0),
        "format": field.format,
        "name": field.name,
        "label": field.label,
        "required_in_shop": field.required,
        "fallback": field.fallback or None,
    }
    if field.has_options:
        out["options"] = {str(value): label for value, label in options.items()}
    return out


def list_json(member_list: List, schema: ListSchema, *, member_count: int) -> dict[str, Any]:
    return {
        **list_summary(member_list, member_count=member_count),
        "country_id": member_list.country_id,
        "date_format": member_list.date_format,
        "duplicates": member_list.duplicates,
        "double_optin": int(member_list.double_optin),
        "fields": {
            name: field_json(field, schema.options.get(name, {}))
            for name, field in schema.fields.items()
        },
    }


def list_summary(member_list: List, *, member_count: int) -> dict[str, Any]:
    return {
        "id": member_list.pk,
        "name": member_list.name,
        "created_at": stamp(member_list.created_at, member_list.timezone),
        "members": member_count,
        "open_rate": 0,
        "click_rate": 0,
    }


def _value(field: Field, member: Member, labels: dict[int, str]) -> Any:
    if field.name == "email":
        return member.email
    if field.name == "mobile":
        return member.mobile
    value = member.data.get(field.name)
    fmt = field.format
    if fmt == FieldFormat.PASSWORD:
        return None  # never revealed
    if fmt in (FieldFormat.CHOICE, FieldFormat.SHOP):
        return None if value is None else {"id": value, "label": labels.get(value)}
    if fmt == FieldFormat.MULTI:
        return [{"id": v, "label": labels.get(v)} for v in value or []]
    if fmt == FieldFormat.DATE:
        return value or EMPTY_DATE
    if fmt == FieldFormat.BOOLEAN:
        return None if value is None else int(value)
    if fmt == FieldFormat.TEXT:
        return value or ""
    return value


def member_json(member: Member, schema: ListSchema) -> dict[str, Any]:
    tz = schema.member_list.timezone
    out: dict[str, Any] = {
        "id": str(member.pk),
        "status": {
            "status": member.status,
            "email": member.email_status,
            "mobile": member.mobile_status,
        },
        "sent_mail": member.sent_mail,
        "sent_sms": 0,
        "open_rate": member.open_rate,
        "imported": member.imported,
        "created_at": stamp(member.created_at, tz),
        "updated_at": stamp(member.updated_at, tz),
    }
    for name, field in schema.fields.items():
        out[name] = _value(field, member, schema.options.get(name, {}))
    return out
