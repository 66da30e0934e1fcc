"""A member's fields as the display strings merge tags print: choice ids become their
labels, dates follow the list's date format, passwords are never printed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from members.models import FieldFormat, List
from members.schema import ListSchema


class ValueMaker:
    """Per list, made once per batch: turns a member's row into merge values."""

    def __init__(self, schema: ListSchema) -> None:
        self.schema = schema
        self.date_format = _date_pattern(schema.member_list)
        self.plan = [
            (name, field.format, schema.options.get(name, {}))
            for name, field in schema.fields.items()
            if name not in ("email", "mobile") and field.format != FieldFormat.PASSWORD
        ]

    def values(self, *, email: str, mobile: str, data: Mapping[str, Any]) -> dict[str, str]:
        out = {"email": email, "mobile": mobile}
        for name, fmt, labels in self.plan:
            value = data.get(name)
            if value is None or value == "":
                continue
            if fmt in (FieldFormat.CHOICE, FieldFormat.SHOP):
                out[name] = labels.get(value, "")
            elif fmt == FieldFormat.MULTI:
                out[name] = ", ".join(labels.get(v, "") for v in value or [] if v in labels)
            elif fmt == FieldFormat.DATE:
                out[name] = _format_date(str(value), self.date_format)
            elif fmt == FieldFormat.BOOLEAN:
                out[name] = "yes" if value else "no"
            else:
                out[name] = str(value)
        return out


def _date_pattern(member_list: List) -> str:
    pattern = (member_list.date_format or "yyyy-mm-dd").lower()
    return pattern if all(part in pattern for part in ("dd", "mm", "yyyy")) else "yyyy-mm-dd"


def _format_date(iso: str, pattern: str) -> str:
    if len(iso) < 10 or iso[4] != "-" or iso[7] != "-":
        return iso
    return pattern.replace("yyyy", iso[:4]).replace("mm", iso[5:7]).replace("dd", iso[8:10])


def fallbacks(schemas: list[ListSchema]) -> dict[str, str]:
    """Each field's fallback; the first list's wins where lists disagree."""
    out: dict[str, str] = {}
    for schema in schemas:
        for name, field in schema.fields.items():
            if field.fallback and name not in out:
                out[name] = field.fallback
    return out
