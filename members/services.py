"""Every write to lists, fields and members.

Errors a caller can fix raise ``MemberError`` naming the field; the API answers it with
400 ``{"error": …}``, the dashboard with a form error. Nothing is half-written: each
service runs in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Case, F, Func, JSONField, Max, Value, When
from django.db.models import CharField as C
from django.db.models.functions import Greatest, Now
from django.utils import timezone
from django.utils.text import slugify

from accounts.models import Account
from members.fields import (
    COLUMN_FIELDS,
    COUNTRY_IDS,
    FIXED_FIELDS,
    FIXED_NAMES,
    FieldSpec,
    FieldValueError,
    clean_email,
    clean_mobile,
    clean_value,
)
from members.models import (
    Duplicates,
    Field,
    FieldFormat,
    FieldKind,
    FieldOption,
    List,
    Member,
    MemberStatus,
)
from members.optin import optin_queue
from members.schema import ListSchema


class JSONRemoveKey(Func):
    """PostgreSQL's ``jsonb - 'key'``."""

    arg_joiner = " - "
    template = "(%(expressions)s)"
    output_field = JSONField()


class MemberError(ValueError):
    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


# ---------------------------------------------------------------- lists and fields


@transaction.atomic
def list_create(
    *,
    account: Account,
    name: str,
    country_id: int = 1,
    duplicates: Duplicates = Duplicates.DISALLOW,
    double_optin: bool = False,
    date_format: str = "dd-mm-yyyy",
    fields: Sequence[FieldSpec] = (),
) -> List:
    if not name.strip():
        raise MemberError("name", "a list needs a name")
    if country_id not in COUNTRY_IDS:
        raise MemberError("country_id", f"{country_id} is not a known country id")
    member_list = List.objects.create(
        account=account,
        name=name.strip(),
        country_id=country_id,
        duplicates=duplicates,
        double_optin=double_optin,
        date_format=date_format,
    )
    for position, spec in enumerate(FIXED_FIELDS):
        _field_create(member_list, spec, position)
    list_set_fields(member_list=member_list, fields=fields, replace=False)
    return member_list


@transaction.atomic
def list_update(
    *,
    member_list: List,
    name: str | None = None,
    country_id: int | None = None,
    duplicates: Duplicates | None = None,
    double_optin: bool | None = None,
    date_format: str | None = None,
) -> List:
    if name is not None:
        if not name.strip():
            raise MemberError("name", "a list needs a name")
        member_list.name = name.strip()
    if country_id is not None:
        if country_id not in COUNTRY_IDS:
            raise MemberError("country_id", f"{country_id} is not a known country id")
        member_list.country_id = country_id
    if double_optin is not None:
        member_list.double_optin = double_optin
    if date_format:
        member_list.date_format = date_format
    policy_changed = duplicates is not None and duplicates != member_list.duplicates
    if duplicates is not None:
        member_list.duplicates = duplicates
    member_list.save()
    if policy_changed:
        _recompute_keys(member_list)
    return member_list


def _recompute_keys(member_list: List) -> None:
    """Apply a new duplicate policy to the members already on the list."""
    policy = member_list.policy
    try:
        with transaction.atomic():
            member_list.members.update(
                email_key=Case(
                    When(email="", then=Value(None)), default=F("email"), output_field=C()
                )
                if policy.unique_email
                else None,
                mobile_key=Case(
                    When(mobile="", then=Value(None)), default=F("mobile"), output_field=C()
                )
                if policy.unique_mobile
                else None,
            )
    except IntegrityError:
        raise MemberError(
            "duplicates", "the list holds duplicate members; remove them before refusing duplicates"
        ) from None


def _field_create(member_list: List, spec: FieldSpec, position: int) -> Field:
    field = Field.objects.create(
        list=member_list,
        name=spec.name,
        label=spec.label or spec.name,
        kind=spec.kind,
        format=spec.format,
        required=spec.required,
        fallback=spec.fallback,
        position=position,
    )
    FieldOption.objects.bulk_create(
        FieldOption(field=field, value=value, label=label)
        for value, label in enumerate(spec.options, start=1)
    )
    return field


def _set_options(field: Field, labels: list[str], *, replace: bool) -> None:
    """Options are matched by label, so existing option ids (and members' values) stay."""
    existing = {o.label: o for o in field.options.all()}
    if replace:
        field.options.exclude(label__in=labels).delete()
    next_value = (field.options.aggregate(m=Max("value"))["m"] or 0) + 1
    for label in labels:
        if label not in existing:
            FieldOption.objects.create(field=field, value=next_value, label=label)
            next_value += 1


@transaction.atomic
def list_set_fields(*, member_list: List, fields: Iterable[FieldSpec], replace: bool) -> None:
    """Create or change fields by name. With ``replace`` (the API's PUT), custom fields
    left out are deleted, and their values with them; fixed fields always stay."""
    current = {f.name: f for f in member_list.fields.all()}
    position = max((f.position for f in current.values()), default=-1) + 1
    seen: set[str] = set()
    for spec in fields:
        name = spec.name
        if name in seen:
            raise MemberError("fields", f"the field {name!r} is given twice")
        seen.add(name)
        field = current.get(name)
        if field is None:
            if name in FIXED_NAMES or spec.kind == FieldKind.FIXED:
                raise MemberError("fields", f"{name!r} is not a standard field of this list")
            field = _field_create(member_list, spec, position)
            position += 1
            continue
        if field.kind == FieldKind.CUSTOM:
            if spec.format != field.format:
                raise MemberError(
                    "fields", f"the format of {name!r} is {field.format}; it cannot change"
                )
            field.label = spec.label or field.label
        field.required = spec.required
        field.fallback = spec.fallback
        field.save()
        if field.kind == FieldKind.CUSTOM and field.has_options:
            _set_options(field, spec.options, replace=replace)
    if replace:
        gone = [f for n, f in current.items() if f.kind == FieldKind.CUSTOM and n not in seen]
        for field in gone:
            Member.objects.filter(list=member_list, data__has_key=field.name).update(
                data=JSONRemoveKey("data", Value(field.name))
            )
            field.delete()
    _list_changed(member_list)


def _list_changed(member_list: List) -> None:
    """Move the list's updated_at, its version for schemas kept in memory (ListSchema.kept),
    strictly forward even when the clock has not (a frozen test clock, one microsecond)."""
    List.objects.filter(pk=member_list.pk).update(
        updated_at=Greatest(Now(), F("updated_at") + timedelta(microseconds=1))
    )
    member_list.refresh_from_db(fields=["updated_at"])


def field_spec_from_api(raw: Mapping[str, Any]) -> FieldSpec:
    """A field definition as Heyloyalty clients send it (heyloyalty-api.md §5.1)."""
    kind = str(raw.get("type") or "custom")
    if kind not in (FieldKind.FIXED, FieldKind.CUSTOM):
        raise MemberError("fields", f"type must be fixed or custom, not {kind!r}")
    label = str(raw.get("label") or "").strip()
    name = str(raw.get("name") or "").strip() or slugify(label).replace("-", "_")
    if not name:
        raise MemberError("fields", "every field needs a name or a label")
    fmt = str(raw.get("format") or "")
    if kind == FieldKind.FIXED:
        fixed = {f.name: f for f in FIXED_FIELDS}.get(name)
        if fixed is None:
            raise MemberError("fields", f"{name!r} is not a standard field")
        fmt = fixed.format
    elif fmt not in FieldFormat.values:
        raise MemberError(
            "fields", f"{name!r}: format must be one of {', '.join(FieldFormat.values)}"
        )
    options_raw = raw.get("options") or []
    if isinstance(options_raw, dict):
        options_raw = list(options_raw.values())
    options = [str(o.get("label") if isinstance(o, dict) else o).strip() for o in options_raw]
    return FieldSpec(
        name=name,
        format=fmt,
        label=label,
        kind=kind,
        required=str(raw.get("required") or raw.get("required_in_shop") or "").lower()
        in {"1", "true", "yes", "on"},
        fallback=str(raw.get("fallback") or ""),
        options=[o for o in options if o],
    )


@transaction.atomic
def list_delete(*, member_list: List) -> None:
    member_list.delete()


# ---------------------------------------------------------------------- members


@dataclass(frozen=True)
class Consent:
    source: str = ""
    ip: str | None = None
    text: str = ""


def _apply(schema: ListSchema, member: Member, values: Mapping[str, Any], *, replace: bool) -> None:
    """Validate and set field values. Unknown keys are ignored (clients send extras)."""
    data = {} if replace else dict(member.data)
    for name, field in schema.fields.items():
        if name not in values:
            continue
        try:
            value = clean_value(field, values[name], schema.option_ids(name))
        except FieldValueError as error:
            raise MemberError(error.field, error.message) from None
        if name == "email":
            member.email = value
        elif name == "mobile":
            member.mobile = value
        elif value is None:
            data.pop(name, None)
        else:
            data[name] = value
    member.data = data
    if not member.email and not member.mobile:
        raise MemberError("email", "a member needs an email address or a mobile number")
    for name, field in schema.fields.items():
        present = getattr(member, name) if name in COLUMN_FIELDS else data.get(name)
        if field.required and present in (None, "", []):
            raise MemberError(name, "this field is required on this list")
    policy = schema.member_list.policy
    member.email_key = member.email if policy.unique_email and member.email else None
    member.mobile_key = member.mobile if policy.unique_mobile and member.mobile else None
    member.updated_at = timezone.now()


def _save(member: Member) -> Member:
    try:
        if transaction.get_connection().in_atomic_block:
            # A savepoint, so that a duplicate does not break the caller's transaction.
            with transaction.atomic():
                member.save()
        else:
            member.save()  # one INSERT, its own transaction: no BEGIN/COMMIT round trips
    except IntegrityError as error:
        text = str(error)
        if "email_key" in text:
            raise MemberError("email", "a member with this email is already on the list") from None
        if "mobile_key" in text:
            raise MemberError(
                "mobile", "a member with this mobile number is already on the list"
            ) from None
        raise
    return member


def member_create(
    *,
    member_list: List,
    values: Mapping[str, Any],
    consent: Consent = Consent(),
    skip_optin: bool = False,
    schema: ListSchema | None = None,
) -> Member:
    schema = schema or ListSchema.load(member_list, options=False)
    member = Member(list=member_list)
    _apply(schema, member, values, replace=True)
    if member_list.double_optin and not skip_optin:
        member.status = member.email_status = MemberStatus.UNCONFIRMED
    member.consent_source = consent.source
    member.consent_ip = consent.ip
    member.consent_text = consent.text
    member.consent_at = timezone.now()
    _save(member)
    optin_queue(member)
    return member


def member_update(
    *,
    member: Member,
    values: Mapping[str, Any],
    replace: bool,
    schema: ListSchema | None = None,
) -> Member:
    """PUT (``replace``) clears fields not sent, keeping email and mobile unless sent;
    PATCH changes only what is sent. Updating an unsubscribed member through the API
    re-activates it, as Heyloyalty does; bounced and complained members stay so."""
    schema = schema or ListSchema.load(member.list, options=False)
    _apply(schema, member, values, replace=replace)
    if member.status == MemberStatus.UNSUBSCRIBED:
        member.status = member.email_status = MemberStatus.ACTIVE
    return _save(member)


@transaction.atomic
def member_delete(*, member: Member) -> None:
    member.delete()


@transaction.atomic
def member_obscure(*, member: Member) -> None:
    """Anonymise: no email, mobile, field value or consent detail remains; the row stays
    (unsubscribed) so that statistics keep their counts."""
    Member.objects.filter(pk=member.pk).update(
        email="",
        mobile="",
        email_key=None,
        mobile_key=None,
        data={},
        consent_source="",
        consent_ip=None,
        consent_text="",
        status=MemberStatus.UNSUBSCRIBED,
        email_status=MemberStatus.UNSUBSCRIBED,
        mobile_status=MemberStatus.UNSUBSCRIBED,
        obscured_at=timezone.now(),
        updated_at=timezone.now(),
    )


def member_upsert(
    *,
    member_list: List,
    unique_field: str,
    values: Mapping[str, Any],
    include_unconfirmed: bool = True,
    skip_optin: bool = False,
    consent: Consent = Consent(),
) -> tuple[str, Member]:
    """Create, or update the one member whose ``unique_field`` matches. Returns
    ("create" | "update", member). More than one match is an error, as in Heyloyalty."""
    schema = ListSchema.load(member_list)
    if unique_field not in schema.fields:
        raise MemberError("unique_field", f"{unique_field!r} is not a field of this list")
    if unique_field not in values:
        raise MemberError(unique_field, "the member has no value for the unique field")
    for attempt in range(2):
        matches = _matching(schema, unique_field, values[unique_field], include_unconfirmed)
        if len(matches) > 1:
            raise MemberError(unique_field, "more than one member on the list matches")
        if matches:
            member = member_update(member=matches[0], values=values, replace=False, schema=schema)
            return "update", member
        try:
            return "create", member_create(
                member_list=member_list,
                values=values,
                skip_optin=skip_optin,
                consent=consent,
                schema=schema,
            )
        except MemberError:
            if attempt:  # a concurrent create won the race: the second round updates it
                raise
    raise AssertionError("unreachable")


def _matching(schema: ListSchema, name: str, raw: Any, include_unconfirmed: bool) -> list[Member]:
    members = Member.objects.filter(list=schema.member_list, obscured_at__isnull=True)
    if not include_unconfirmed:
        members = members.exclude(status=MemberStatus.UNCONFIRMED)
    if name == "email":
        members = members.filter(email=clean_email(raw))
    elif name == "mobile":
        members = members.filter(mobile=clean_mobile(raw))
    else:
        field = schema.fields[name]
        try:
            value = clean_value(field, raw, schema.option_ids(name))
        except FieldValueError as error:
            raise MemberError(error.field, error.message) from None
        members = members.filter(**{f"data__{name}": value})
    return list(members[:2])


# Demo data and bulk paths.


@dataclass(frozen=True)
class MemberData:
    email: str
    firstname: str = ""
    lastname: str = ""
    mobile: str = ""


@transaction.atomic
def members_add(*, member_list: List, members: Iterable[MemberData], batch_size: int = 1000) -> int:
    """Add trusted members in bulk (demo data); returns how many were added."""
    policy = member_list.policy
    rows = []
    for m in members:
        email = m.email.strip().lower()
        data = {k: v for k, v in (("firstname", m.firstname), ("lastname", m.lastname)) if v}
        rows.append(
            Member(
                list=member_list,
                email=email,
                mobile=m.mobile,
                email_key=email if policy.unique_email and email else None,
                mobile_key=m.mobile if policy.unique_mobile and m.mobile else None,
                data=data,
            )
        )
    Member.objects.bulk_create(rows, batch_size=batch_size)
    return len(rows)
