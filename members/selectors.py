"""Reads of lists and members, always scoped to an account."""

from __future__ import annotations

from collections.abc import Mapping
from functools import reduce
from operator import and_, or_
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Count, Q, QuerySet
from django.http import Http404

from accounts.models import Account
from members.fields import FieldValueError, clean_value
from members.models import FieldFormat, Import, List, Member
from members.schema import ListSchema
from members.services import MemberError


def lists_for_account(*, account: Account) -> QuerySet[List]:
    """The account's lists, each with ``member_count``."""
    return List.objects.filter(account=account).annotate(member_count=Count("members"))


def list_get(*, account: Account, list_id: int | str) -> List:
    """One of the account's lists; another account's id is a 404, like a missing one."""
    try:
        return List.objects.get(account=account, pk=int(list_id))
    except (List.DoesNotExist, ValueError, TypeError):
        raise Http404("list") from None


def member_get(*, member_list: List, member_id: str) -> Member:
    try:
        return Member.objects.get(list=member_list, pk=member_id, obscured_at__isnull=True)
    except (Member.DoesNotExist, ValidationError, ValueError, TypeError):
        # A malformed GUID is as unknown as a missing one.
        raise Http404("member") from None


TEXT_OPS = {"eq": "iexact", "sw": "istartswith", "ew": "iendswith", "ct": "icontains"}
NEGATED = {"neq": "eq", "nct": "ct", "nin": "in"}
ORDER_FIELDS = {"created_at", "updated_at", "email", "mobile"}


def _lookup(schema: ListSchema, name: str) -> str:
    return name if name in ("email", "mobile") else f"data__{name}"


def _condition(schema: ListSchema, name: str, op: str, values: list[Any]) -> Q:
    field = schema.fields.get(name)
    if field is None:
        raise MemberError("filter", f"{name!r} is not a field of this list")
    path = _lookup(schema, name)
    if op in ("ie", "nie"):
        empty = Q(**{f"{path}__isnull": True}) | Q(**{path: ""})
        if path.startswith("data__"):
            empty = ~Q(data__has_key=name) | Q(**{path: ""}) | Q(**{f"{path}__isnull": True})
        return empty if op == "ie" else ~empty
    if op in NEGATED:
        return ~_condition(schema, name, NEGATED[op], values)
    if not values:
        raise MemberError("filter", f"{name} {op}: a value is needed")
    text = field.format in (FieldFormat.TEXT,) or name in ("email", "mobile")
    if text and op in TEXT_OPS:
        return reduce(or_, (Q(**{f"{path}__{TEXT_OPS[op]}": str(v).strip()}) for v in values))
    if text:
        raise MemberError("filter", f"{op} does not apply to the text field {name}")
    try:
        cleaned = [clean_value(field, v, schema.option_ids(name)) for v in values]
    except FieldValueError as error:
        raise MemberError("filter", error.message) from None
    if field.format == FieldFormat.MULTI:
        flat = [item for value in cleaned for item in (value or [])]
        if op == "ina":
            return Q(**{f"{path}__contains": flat})
        if op in ("eq", "in"):
            return reduce(or_, (Q(**{f"{path}__contains": [item]}) for item in flat))
        raise MemberError("filter", f"{op} does not apply to the multiple-choice field {name}")
    comparisons = {"gt": "gt", "gte": "gte", "lt": "lt", "lte": "lte"}
    if op in comparisons and field.format in (FieldFormat.NUMBER, FieldFormat.DATE):
        return Q(**{f"{path}__{comparisons[op]}": cleaned[0]})
    if op in ("eq", "in"):
        return reduce(or_, (Q(**{path: value}) for value in cleaned))
    raise MemberError("filter", f"{op} does not apply to the field {name} ({field.format})")


def members_filter(
    *,
    member_list: List,
    conditions: Mapping[str, Mapping[str, list[Any]]],
    logic: str = "and",
    order_by: str = "created_at",
    descending: bool = False,
) -> QuerySet[Member]:
    """Members matching the filter of heyloyalty-api.md §6 (field -> operator -> values)."""
    schema = ListSchema.load(member_list)
    if logic not in ("and", "or"):
        raise MemberError("logic", "logic must be and or or")
    members = Member.objects.filter(list=member_list, obscured_at__isnull=True)
    parts = [
        _condition(schema, name, op, list(values))
        for name, ops in conditions.items()
        for op, values in ops.items()
    ]
    if parts:
        members = members.filter(reduce(and_ if logic == "and" else or_, parts))
    if order_by not in ORDER_FIELDS and order_by not in schema.fields:
        raise MemberError("orderby", f"cannot order by {order_by!r}")
    key = order_by if order_by in ORDER_FIELDS else f"data__{order_by}"
    return members.order_by(f"-{key}" if descending else key, "pk")


def import_get(*, member_list: List, import_id: int | str) -> Import:
    try:
        return Import.objects.select_related("list").get(list=member_list, pk=int(import_id))
    except (Import.DoesNotExist, ValueError, TypeError):
        raise Http404("import") from None
