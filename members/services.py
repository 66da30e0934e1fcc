"""Every write to lists, fields and members.

Errors a caller can fix raise ``MemberError`` naming the field; the API answers it with
400 ``{"error": …}``, the dashboard with a form error. Nothing is half-written: each
service runs in one transaction.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from dataclasses import field as dataclass_field
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Case, F, Func, JSONField, Max, Q, Value, When
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
    WebhookEvent,
)
from members.optin import optin_queue
from members.schema import ListSchema
from members.webhook_delivery import webhooks_emit, webhooks_wanted


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


def _save_and_emit(member: Member, member_list: List, event: WebhookEvent) -> Member:
    """``_save``, and the list's webhook event in the same transaction when a webhook of
    the list wants it (known from memory: a list without webhooks pays nothing)."""
    if not webhooks_wanted(member_list=member_list, event=event):
        return _save(member)
    member.list = member_list  # the same list, already loaded
    with transaction.atomic():
        _save(member)
        webhooks_emit(member_list_id=member.list_id, event=event, members=[member])
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
    if member.status == MemberStatus.UNCONFIRMED:
        _save(member)  # subscribes when confirming: the webhook event comes then (optin.py)
    else:
        _save_and_emit(member, member_list, WebhookEvent.SUBSCRIBE)
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
    before = dict(member.data)
    _apply(schema, member, values, replace=replace)
    if member.status == MemberStatus.UNSUBSCRIBED:
        member.status = member.email_status = MemberStatus.ACTIVE
    saved = _save_and_emit(member, schema.member_list, WebhookEvent.UPDATE)
    _fields_changed(member, before)
    return saved


def _fields_changed(member: Member, before: dict[str, Any]) -> None:
    """Tell the "field changed" autoresponders (campaigns/autoresponder_events.py; imported
    here, not at the top: members does not otherwise depend on campaigns)."""
    from campaigns.autoresponder_events import member_fields_changed

    member_fields_changed(
        list_id=member.list_id, member_id=member.pk, before=before, after=member.data
    )


@transaction.atomic
def member_delete(*, member: Member) -> None:
    if member.status in (MemberStatus.ACTIVE, MemberStatus.UNCONFIRMED):
        # Clients delete to unsubscribe (Laravel's unsubscribe, Magento's delete by field):
        # a list's webhook hears it as one, with the member as it was.
        webhooks_emit(
            member_list_id=member.list_id, event=WebhookEvent.UNSUBSCRIBE, members=[member]
        )
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


# ------------------------------------------------------- bulk copy and move (API M8)

BULK_MATCH_FIELDS = ("email", "mobile", "both")
BULK_ACTIONS = ("patch", "update", "skip")
MAX_BULK_MEMBERS = 10_000
_UNKNOWN_SHOWN = 20  # unknown ids named in the error; the rest are counted
_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# What a duplicate's write may change, kept to put back when the write is refused.
_BULK_CHANGED = ("email", "mobile", "email_key", "mobile_key", "data", "updated_at")


@dataclass
class BulkResult:
    """What a bulk copy or move did. ``errors`` name the members left alone, and why."""

    copied: int = 0
    updated: int = 0
    patched: int = 0
    skipped: int = 0
    removed: int = 0
    errors: list[dict[str, str]] = dataclass_field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class _ValueMap:
    """Turns a member's stored values on one list into stored values on another.

    Fields are per list: a value is carried only to a field of the same name, and only
    as a value valid there. Option ids differ between lists, so choices travel by label
    (case and spaces aside); anything that does not fit is dropped, not an error.
    """

    def __init__(self, source: ListSchema, target: ListSchema) -> None:
        self.source, self.target = source, target
        self.names = [n for n in source.fields if n in target.fields and n not in COLUMN_FIELDS]
        self.by_label = {
            name: {label.strip().lower(): value for value, label in options.items()}
            for name, options in target.options.items()
        }

    def data(self, member: Member) -> dict[str, Any]:
        out = {}
        for name in self.names:
            value = member.data.get(name)
            if value not in (None, "", []):
                moved = self._value(self.source.fields[name], self.target.fields[name], value)
                if moved not in (None, "", []):
                    out[name] = moved
        return out

    def _value(self, source: Field, target: Field, value: Any) -> Any:
        same = source.format == target.format
        if same and not target.has_options:
            return value  # the stored form is the same on both lists
        if FieldFormat.PASSWORD in (source.format, target.format):
            return None  # never a hash as text, nor text as a password
        if source.has_options:
            labels = self.source.options.get(source.name, {})
            if same and not labels and not self.by_label.get(target.name):
                return value  # shop ids, on lists that name no shops
            items = value if isinstance(value, list) else [value]
            texts = [labels[item] for item in items if item in labels]
        else:
            texts = [_display(value)]
        if not texts:
            return None
        if target.has_options:
            wanted = self.by_label.get(target.name, {})
            ids = sorted({wanted[t.strip().lower()] for t in texts if t.strip().lower() in wanted})
            if target.format == FieldFormat.MULTI:
                return ids or None
            return ids[0] if len(ids) == 1 else None
        try:
            return clean_value(target, ", ".join(texts), set())
        except FieldValueError:
            return None


def _display(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


class _TargetIndex:
    """The target list's members by email and by mobile, oldest first, kept up to date
    as the copy adds and changes members (two source members may be one person)."""

    def __init__(self, members: Iterable[Member]) -> None:
        self.by: dict[str, dict[str, list[Member]]] = {"email": {}, "mobile": {}}
        for member in members:
            self.put(member)

    def put(self, member: Member) -> None:
        for name in ("email", "mobile"):
            if key := getattr(member, name):
                found = self.by[name].setdefault(key, [])
                if member not in found:
                    found.append(member)

    def drop(self, member: Member) -> None:
        for name in ("email", "mobile"):
            found = self.by[name].get(getattr(member, name), [])
            if member in found:
                found.remove(member)

    def find(self, member: Member, match: str) -> Member | None:
        for name in ("email", "mobile"):
            key = getattr(member, name)
            if match in (name, "both") and key and self.by[name].get(key):
                return self.by[name][key][0]
        return None


def _member_ids(member_ids: Sequence[str]) -> list[str]:
    """The distinct ids in the order given, GUIDs in their canonical spelling."""
    seen: dict[str, None] = {}
    for raw in member_ids:
        text = str(raw).strip()
        with contextlib.suppress(ValueError):  # not a GUID: no member, named as unknown
            text = str(uuid.UUID(text))
        seen.setdefault(text, None)
    return list(seen)


@transaction.atomic
def members_bulk_copy(
    *,
    source: List,
    target: List,
    member_ids: Sequence[str],
    match: str = "email",
    action: str = "skip",
    move: bool = False,
) -> BulkResult:
    """Copy (or move) members of ``source`` to ``target``, in one transaction.

    1. Every id must name a member of the source list, or nothing happens: MemberError
       naming the ids that do not (a 400).
    2. Each member's values are carried to the target's fields of the same name (_ValueMap).
    3. A member is a duplicate when a target member has the same ``match`` value (email,
       mobile, or ``both``: either one; the oldest such member when there are several).
       ``skip`` leaves that member alone; ``patch`` fills only its empty fields;
       ``update`` replaces its fields, email and mobile with the source member's. Either
       way it keeps its id, history, status and consent on the target list: a copy never
       makes an unsubscribed member active again, nor a confirmed one unconfirmed.
       Otherwise a new member is created with the source member's status and consent.
    4. The target's duplicate policy holds: a write that would give the target two members
       with an email or mobile it keeps unique is not made, and the member is named in
       ``errors``, as is one that lacks a field the target requires.
    5. ``move`` then deletes from the source list every member that is now on the target
       (copied, merged, or skipped as a duplicate); members named in ``errors`` stay.
    """
    if match not in BULK_MATCH_FIELDS:
        raise MemberError(
            "handleDuplicates[field]", f"must be one of {', '.join(BULK_MATCH_FIELDS)}"
        )
    if action not in BULK_ACTIONS:
        raise MemberError("handleDuplicates[action]", f"must be one of {', '.join(BULK_ACTIONS)}")
    if source.pk == target.pk:
        raise MemberError("listId", "the target list is the source list")
    members = _bulk_members(source, _member_ids(member_ids))
    value_map = _ValueMap(ListSchema.load(source), ListSchema.load(target))
    index = _TargetIndex(_bulk_candidates(target, members))
    result = BulkResult()
    done: list[uuid.UUID] = []
    for member in members:
        problem = _bulk_one(member, target, value_map, index, action, match, result)
        if problem is None:
            done.append(member.pk)
        else:
            result.errors.append({"member": str(member.pk), **problem})
    if move and done:
        _, deleted = Member.objects.filter(list=source, pk__in=done).delete()
        result.removed = deleted.get(Member._meta.label, 0)
    return result


def _bulk_members(source: List, ids: list[str]) -> list[Member]:
    if not ids:
        raise MemberError("members", "name at least one member id")
    if len(ids) > MAX_BULK_MEMBERS:
        raise MemberError("members", f"at most {MAX_BULK_MEMBERS} members in one request")
    guids = [i for i in ids if _GUID.fullmatch(i)]
    members = list(
        Member.objects.select_for_update()  # a concurrent move of the same members waits
        .filter(list=source, obscured_at__isnull=True, pk__in=guids)
        .order_by("created_at", "pk")
    )
    found = {str(m.pk) for m in members}
    unknown = [i for i in ids if i not in found]
    if unknown:
        shown = ", ".join(unknown[:_UNKNOWN_SHOWN])
        more = f" and {len(unknown) - _UNKNOWN_SHOWN} more" if len(unknown) > _UNKNOWN_SHOWN else ""
        raise MemberError("members", f"not members of list {source.pk}: {shown}{more}")
    return members


def _bulk_candidates(target: List, members: list[Member]) -> Iterable[Member]:
    """The target members that may be duplicates of the ones being copied, locked."""
    emails = {m.email for m in members if m.email}
    mobiles = {m.mobile for m in members if m.mobile}
    return (
        Member.objects.select_for_update()
        .filter(list=target, obscured_at__isnull=True)
        .filter(Q(email__in=emails) | Q(mobile__in=mobiles))
        .order_by("created_at", "pk")
    )


def _bulk_one(
    member: Member,
    target: List,
    value_map: _ValueMap,
    index: _TargetIndex,
    action: str,
    match: str,
    result: BulkResult,
) -> dict[str, str] | None:
    """Copy one member; a problem (``{"field", "error"}``) when it was left alone."""
    existing = index.find(member, match)
    if existing is not None and action == "skip":
        result.skipped += 1
        return None
    data = value_map.data(member)
    if existing is None:
        copy = Member(
            list=target,
            email=member.email,
            mobile=member.mobile,
            data=data,
            status=member.status,
            email_status=member.email_status,
            mobile_status=member.mobile_status,
            consent_source=member.consent_source,
            consent_ip=member.consent_ip,
            consent_at=member.consent_at,
            consent_text=member.consent_text,
        )
        problem = _bulk_save(copy, value_map.target)
        if problem is None:
            index.put(copy)
            result.copied += 1
            optin_queue(copy)  # an unconfirmed member confirms the target list too
        return problem
    before = {name: getattr(existing, name) for name in _BULK_CHANGED}
    index.drop(existing)
    if action == "patch":
        existing.email = existing.email or member.email
        existing.mobile = existing.mobile or member.mobile
        existing.data = {
            **data,
            **{k: v for k, v in existing.data.items() if v not in (None, "", [])},
        }
    else:
        existing.email, existing.mobile, existing.data = member.email, member.mobile, data
    problem = _bulk_save(existing, value_map.target)
    if problem is not None:
        for name, value in before.items():  # as it still is in the database
            setattr(existing, name, value)
    else:
        _fields_changed(existing, before["data"])
        if action == "patch":
            result.patched += 1
        else:
            result.updated += 1
    index.put(existing)
    return problem


def _bulk_save(member: Member, schema: ListSchema) -> dict[str, str] | None:
    """Check the target's rules and save; a problem instead of an exception, so that one
    member does not stop the others."""
    for name, field in schema.fields.items():
        present = getattr(member, name) if name in COLUMN_FIELDS else member.data.get(name)
        if field.required and present in (None, "", []):
            return {"field": name, "error": "the target list requires this field"}
    policy = schema.member_list.policy
    member.email_key = member.email if policy.unique_email and member.email else None
    member.mobile_key = member.mobile if policy.unique_mobile and member.mobile else None
    member.updated_at = timezone.now()
    try:
        _save(member)
    except MemberError as error:
        return {"field": error.field or "", "error": error.message}
    return None
