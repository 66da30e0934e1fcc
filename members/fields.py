"""The fixed fields every list has, the countries, and field-value rules.

One module decides what a valid value of each field format is, so the API, the
dashboard and imports accept and store exactly the same things.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from django.contrib.auth.hashers import make_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from members.models import Field, FieldFormat

# Heyloyalty's country ids (the `country` option ids and a list's `country_id`).
COUNTRIES: list[tuple[int, str, str]] = [
    (1, "Denmark", "DK"),
    (2, "Sweden", "SE"),
    (3, "Norway", "NO"),
    (4, "Finland", "FI"),
    (5, "Iceland", "IS"),
    (6, "Germany", "DE"),
    (7, "United Kingdom", "GB"),
    (8, "Netherlands", "NL"),
    (9, "Poland", "PL"),
    (10, "France", "FR"),
    (11, "Spain", "ES"),
    (12, "Italy", "IT"),
    (13, "Faroe Islands", "FO"),
    (14, "Greenland", "GL"),
    (15, "United States", "US"),
]
COUNTRY_IDS = {cid for cid, _, _ in COUNTRIES}


@dataclass(frozen=True)
class FieldSpec:
    """A field definition as the API and the dashboard give it."""

    name: str
    format: str
    label: str = ""
    kind: str = "custom"
    required: bool = False
    fallback: str = ""
    options: list[str] = field(default_factory=list)  # labels, for choice and multi


FIXED_FIELDS: list[FieldSpec] = [
    FieldSpec("firstname", FieldFormat.TEXT, "First name", "fixed"),
    FieldSpec("lastname", FieldFormat.TEXT, "Last name", "fixed"),
    FieldSpec("email", FieldFormat.TEXT, "Email", "fixed"),
    FieldSpec("mobile", FieldFormat.NUMBER, "Mobile", "fixed"),
    FieldSpec("sex", FieldFormat.CHOICE, "Sex", "fixed", options=["Male", "Female"]),
    FieldSpec("birthdate", FieldFormat.DATE, "Birthdate", "fixed"),
    FieldSpec("address", FieldFormat.TEXT, "Address", "fixed"),
    FieldSpec("postalcode", FieldFormat.NUMBER, "Postal code", "fixed"),
    FieldSpec("city", FieldFormat.TEXT, "City", "fixed"),
    FieldSpec(
        "country",
        FieldFormat.CHOICE,
        "Country",
        "fixed",
        options=[name for _, name, _ in COUNTRIES],
    ),
    FieldSpec("password", FieldFormat.PASSWORD, "Password", "fixed"),
    FieldSpec("reference", FieldFormat.TEXT, "Reference", "fixed"),
]
FIXED_NAMES = {f.name for f in FIXED_FIELDS}
# Kept as columns on Member, not in `data`.
COLUMN_FIELDS = ("email", "mobile")

TEXT_MAX = 255
EMAIL_MAX = 320  # what Django's EmailValidator accepts (RFC 3696 section 3)
_MOBILE = re.compile(r"^\+?[0-9]{4,20}$")
# The shape nearly every address has, in lower case ASCII. It is a strict subset of what
# Django's validate_email accepts (a dot-atom local part; labels of 1-63 letters, digits and
# inner hyphens; a TLD of letters), so a match needs no further check. Quoted local parts,
# IDN domains, address literals and "localhost" go to the validator as before.
_PLAIN_EMAIL = re.compile(
    r"[a-z0-9_+-]+(?:\.[a-z0-9_+-]+)*"
    r"@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"
)
_TRUE = {"1", "true", "on", "yes"}
_FALSE = {"0", "false", "off", "no", ""}


class FieldValueError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _one(value: Any) -> Any:
    """A one-element list counts as its element (the WordPress plugin sends choices so)."""
    if isinstance(value, list | tuple) and len(value) == 1:
        return value[0]
    return value


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def clean_email(value: Any) -> str:
    return _email(str(_one(value) or ""))


def _email(text: str) -> str:
    email = text.strip().lower()
    if not email:
        return ""
    if len(email) <= EMAIL_MAX and _PLAIN_EMAIL.fullmatch(email):
        return email  # imports check millions; the validator takes six times as long
    try:
        validate_email(email)
    except ValidationError:
        raise FieldValueError("email", f"{email!r} is not a valid email address") from None
    return email


def clean_mobile(value: Any) -> str:
    mobile = re.sub(r"[\s\-()]", "", str(_one(value) or ""))
    if mobile and not _MOBILE.match(mobile):
        raise FieldValueError("mobile", f"{value!r} is not a mobile number")
    return mobile


def _int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise FieldValueError(name, "expected a whole number")
    try:
        return int(str(value).strip())
    except ValueError:
        raise FieldValueError(name, f"{value!r} is not a whole number") from None


def _date(name: str, value: Any) -> str | None:
    text = str(value).strip()
    if text.startswith("0000-00-00"):
        return None
    for pattern in ("%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"):
        try:
            parsed = dt.datetime.strptime(text, pattern)
        except ValueError:
            continue
        return parsed.date().isoformat() if pattern == "%Y-%m-%d" else parsed.isoformat(" ")
    raise FieldValueError(name, f"{value!r} is not a date (use YYYY-MM-DD)")


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise FieldValueError(name, f"{value!r} is not a yes/no value (use 1 or 0)")


def _option(name: str, value: Any, options: set[int]) -> int:
    option = _int(name, value)
    if option not in options:
        raise FieldValueError(name, f"{option} is not an option of this field")
    return option


def clean_value(field: Field, value: Any, options: set[int]) -> Any:
    """The stored form of one field value; None when empty. Raises FieldValueError."""
    name = field.name
    if name == "email":
        return clean_email(value)
    if name == "mobile":
        return clean_mobile(value)
    if field.format == FieldFormat.MULTI:
        items = value if isinstance(value, list) else [] if _empty(value) else [value]
        if isinstance(value, dict):
            items = list(value.values())
        return sorted({_option(name, v, options) for v in items if not _empty(v)}) or None
    value = _one(value)
    if field.format == FieldFormat.BOOLEAN and value == "":
        return False  # PHP's multipart encoding of false
    if _empty(value):
        return None
    if field.format == FieldFormat.TEXT:
        text = str(value).strip()
        if len(text) > TEXT_MAX:
            raise FieldValueError(name, f"longer than {TEXT_MAX} characters")
        return text
    if field.format == FieldFormat.NUMBER:
        return _int(name, value)
    if field.format == FieldFormat.DATE:
        return _date(name, value)
    if field.format == FieldFormat.BOOLEAN:
        return _bool(name, value)
    if field.format in (FieldFormat.CHOICE, FieldFormat.SHOP):
        return _option(name, value, options) if options else _int(name, value)
    if field.format == FieldFormat.PASSWORD:
        return make_password(str(value))
    raise FieldValueError(name, f"unknown format {field.format}")


def _text(name: str, value: str) -> str | None:
    if not value:
        return None
    text = value.strip()
    if len(text) > TEXT_MAX:
        raise FieldValueError(name, f"longer than {TEXT_MAX} characters")
    return text


def _number(name: str, value: str) -> int | None:
    return _int(name, value) if value else None


def text_cleaner(field: Field, options: set[int]) -> Callable[[str], Any]:
    """``clean_value`` for one field and a string value (a CSV cell), chosen once per field.

    An import cleans millions of values of a few fields; for the common ones (email,
    mobile, text, number) this skips clean_value's branching on every value and gives the
    same answer. The other formats go through clean_value itself.
    """
    name, fmt = field.name, field.format
    if name == "email":
        return _email
    if name == "mobile":
        return clean_mobile
    if fmt == FieldFormat.TEXT:
        return partial(_text, name)
    if fmt == FieldFormat.NUMBER:
        return partial(_number, name)
    return lambda value: clean_value(field, value, options)
