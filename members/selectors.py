"""Reads of lists, members and segments, always scoped to an account."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import reduce
from operator import and_, or_
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Count, Q, QuerySet
from django.http import Http404

from accounts.models import Account
from heyloyalty.api.params import FILTER_OPERATORS, to_list
from members.fields import FieldValueError, clean_value
from members.models import (
    FieldFormat,
    Import,
    List,
    Member,
    MemberStatus,
    Segment,
    Webhook,
)
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


# -- the query builder: one for the member filter (§6) and for segments (§5.5) ----------
#
# Both describe members with a tree of rules. A condition is field -> operator -> values;
# a group combines rules with "and" or "or" and may hold further groups. The member
# filter is one flat group; a segment is any tree.

LOGICS = ("and", "or")
TEXT_OPS = {"eq": "iexact", "sw": "istartswith", "ew": "iendswith", "ct": "icontains"}
NEGATED = {"neq": "eq", "nct": "ct", "nin": "in"}
ORDER_FIELDS = {"created_at", "updated_at", "email", "mobile"}
# Member statuses read like fields. A list field named "status" wins over the bare word;
# "status.status" always means the member's status.
STATUS_COLUMNS = {
    "status": "status",
    "status.status": "status",
    "status.email": "email_status",
    "status.mobile": "mobile_status",
}
STATUS_OPS = {"eq": False, "in": False, "neq": True, "nin": True}  # op -> negated
# A tree from a request may not grow without bound: every condition is a SQL clause.
MAX_RULE_DEPTH = 8
MAX_CONDITIONS = 200


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    values: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"field": self.field, "op": self.op, "values": list(self.values)}


@dataclass(frozen=True)
class Group:
    logic: str
    rules: tuple[Condition | Group, ...] = ()

    @classmethod
    def from_flat(cls, conditions: Mapping[str, Mapping[str, Sequence[Any]]], logic: str) -> Group:
        """The member filter's ``{field: {op: [values]}}`` as one group."""
        return cls(
            logic,
            tuple(
                Condition(str(name), str(op), tuple(str(v) for v in values))
                for name, ops in conditions.items()
                for op, values in ops.items()
            ),
        )

    def to_json(self) -> dict[str, Any]:
        return {"logic": self.logic, "rules": [rule.to_json() for rule in self.rules]}

    def flat(self) -> dict[str, dict[str, list[str]]] | None:
        """``{field: {op: [values]}}`` when the group is expressible that way (no nested
        group, no field and operator twice), else None."""
        flat: dict[str, dict[str, list[str]]] = {}
        for rule in self.rules:
            if isinstance(rule, Group) or rule.op in flat.get(rule.field, {}):
                return None
            flat.setdefault(rule.field, {})[rule.op] = list(rule.values)
        return flat

    def conditions(self) -> Iterator[Condition]:
        for rule in self.rules:
            if isinstance(rule, Group):
                yield from rule.conditions()
            else:
                yield rule


def rules_from_json(data: Any, *, param: str = "filters") -> Group:
    """A rule tree from its JSON form, ``{"logic": "and", "rules": [rule, …]}`` where a
    rule is ``{"field", "op", "values"}`` or another group. Checks the shape, the logic
    and the operators; fields are checked against a list by :func:`rules_q`."""
    budget = [MAX_CONDITIONS]
    return _group_from_json(data, param=param, where=param, depth=1, budget=budget)


def _group_from_json(data: Any, *, param: str, where: str, depth: int, budget: list[int]) -> Group:
    if depth > MAX_RULE_DEPTH:
        raise MemberError(param, f"{where}: groups may nest at most {MAX_RULE_DEPTH} deep")
    if not isinstance(data, Mapping) or "rules" not in data:
        raise MemberError(param, f'{where} must be a group: {{"logic": …, "rules": […]}}')
    logic = str(data.get("logic") or "and").strip().lower()
    if logic not in LOGICS:
        raise MemberError("logic", f"{where}[logic] must be and or or, not {logic!r}")
    raw_rules = to_list(data["rules"])
    if not raw_rules:
        raise MemberError(param, f"{where}: a group needs at least one rule")
    rules: list[Condition | Group] = []
    for index, raw in enumerate(raw_rules):
        at = f"{where}[rules][{index}]"
        if isinstance(raw, Mapping) and "rules" in raw:
            rules.append(
                _group_from_json(raw, param=param, where=at, depth=depth + 1, budget=budget)
            )
            continue
        budget[0] -= 1
        if budget[0] < 0:
            raise MemberError(param, f"{param}: at most {MAX_CONDITIONS} conditions")
        rules.append(_condition_from_json(raw, param=param, where=at))
    return Group(logic, tuple(rules))


def _condition_from_json(raw: Any, *, param: str, where: str) -> Condition:
    if not isinstance(raw, Mapping) or not isinstance(raw.get("field"), str | int):
        raise MemberError(
            param, f'{where} must be a condition {{"field", "op", "values"}} or a group'
        )
    name = str(raw["field"]).strip()
    op = str(raw.get("op") or "").strip()
    if op not in FILTER_OPERATORS:
        raise MemberError(param, f"{where}: unknown operator {op!r} for {name}")
    values: list[str] = []
    for value in to_list(raw.get("values")) if op not in ("ie", "nie") else []:
        if isinstance(value, bool):
            value = int(value)
        if not isinstance(value, str | int | float):
            raise MemberError(param, f"{where}: values must be strings or numbers")
        values.append(str(value))
    return Condition(name, op, tuple(values))


def rules_q(schema: ListSchema, rule: Condition | Group, *, param: str = "filter") -> Q:
    """The rule tree as a ``Q`` over Member. An empty group matches every member.
    Unknown fields, operators that do not fit a field, and bad values raise
    ``MemberError(param, …)`` naming them."""
    if isinstance(rule, Condition):
        return _condition(schema, rule.field, rule.op, list(rule.values), param)
    if rule.logic not in LOGICS:
        raise MemberError("logic", f"logic must be and or or, not {rule.logic!r}")
    parts = [rules_q(schema, child, param=param) for child in rule.rules]
    return reduce(and_ if rule.logic == "and" else or_, parts) if parts else Q()


def _lookup(schema: ListSchema, name: str) -> str:
    return name if name in ("email", "mobile") else f"data__{name}"


def _status_condition(column: str, name: str, op: str, values: list[Any], param: str) -> Q:
    if op not in STATUS_OPS:
        raise MemberError(param, f"{op} does not apply to {name} (use eq, neq, in or nin)")
    wanted = [str(v).strip().lower() for v in values]
    if not wanted:
        raise MemberError(param, f"{name} {op}: a value is needed")
    for value in wanted:
        if value not in MemberStatus.values:
            raise MemberError(
                param,
                f"{value!r} is not a member status ({', '.join(MemberStatus.values)})",
            )
    matched = Q(**{f"{column}__in": wanted})
    return ~matched if STATUS_OPS[op] else matched


def _condition(schema: ListSchema, name: str, op: str, values: list[Any], param: str) -> Q:
    if op not in FILTER_OPERATORS:
        raise MemberError(param, f"unknown operator {op!r} for {name}")
    if name in STATUS_COLUMNS and name not in schema.fields:
        return _status_condition(STATUS_COLUMNS[name], name, op, values, param)
    field = schema.fields.get(name)
    if field is None:
        raise MemberError(param, f"{name!r} is not a field of this list")
    path = _lookup(schema, name)
    if op in ("ie", "nie"):
        empty = Q(**{f"{path}__isnull": True}) | Q(**{path: ""})
        if path.startswith("data__"):
            empty = ~Q(data__has_key=name) | Q(**{path: ""}) | Q(**{f"{path}__isnull": True})
        return empty if op == "ie" else ~empty
    if op in NEGATED:
        positive = _condition(schema, name, NEGATED[op], values, param)
        if path.startswith("data__"):
            # SQL's NOT (NULL = 'x') is not true: a member without the value is "not x".
            return ~positive | Q(**{f"{path}__isnull": True}) | Q(**{path: None})
        return ~positive
    if not values:
        raise MemberError(param, f"{name} {op}: a value is needed")
    text = field.format in (FieldFormat.TEXT,) or name in ("email", "mobile")
    if text and op in TEXT_OPS:
        return reduce(or_, (Q(**{f"{path}__{TEXT_OPS[op]}": str(v).strip()}) for v in values))
    if text:
        raise MemberError(param, f"{op} does not apply to the text field {name}")
    try:
        cleaned = [clean_value(field, v, schema.option_ids(name)) for v in values]
    except FieldValueError as error:
        raise MemberError(param, error.message) from None
    if field.format == FieldFormat.MULTI:
        flat = [item for value in cleaned for item in (value or [])]
        if op == "ina":
            return Q(**{f"{path}__contains": flat})
        if op in ("eq", "in"):
            return reduce(or_, (Q(**{f"{path}__contains": [item]}) for item in flat))
        raise MemberError(param, f"{op} does not apply to the multiple-choice field {name}")
    comparisons = {"gt": "gt", "gte": "gte", "lt": "lt", "lte": "lte"}
    if op in comparisons and field.format in (FieldFormat.NUMBER, FieldFormat.DATE):
        return Q(**{f"{path}__{comparisons[op]}": cleaned[0]})
    if op in ("eq", "in"):
        return reduce(or_, (Q(**{path: value}) for value in cleaned))
    raise MemberError(param, f"{op} does not apply to the field {name} ({field.format})")


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
    if logic not in LOGICS:
        raise MemberError("logic", "logic must be and or or")
    members = Member.objects.filter(list=member_list, obscured_at__isnull=True)
    rules = Group.from_flat(conditions, logic)
    if rules.rules:
        members = members.filter(rules_q(schema, rules, param="filter"))
    if order_by not in ORDER_FIELDS and order_by not in schema.fields:
        raise MemberError("orderby", f"cannot order by {order_by!r}")
    key = order_by if order_by in ORDER_FIELDS else f"data__{order_by}"
    return members.order_by(f"-{key}" if descending else key, "pk")


# -- segments ---------------------------------------------------------------------------


def segments_for_list(*, member_list: List) -> QuerySet[Segment]:
    return Segment.objects.filter(list=member_list).select_related("list")


def segment_get(*, member_list: List, segment_id: int | str) -> Segment:
    """One of the list's segments; a segment of another list (or account) is a 404."""
    try:
        return Segment.objects.select_related("list").get(list=member_list, pk=int(segment_id))
    except (Segment.DoesNotExist, ValueError, TypeError):
        raise Http404("segment") from None


def segment_rules(segment: Segment) -> Group:
    return rules_from_json(segment.rules)


def _segment_q(segment: Segment, schema: ListSchema) -> Q:
    return rules_q(schema, segment_rules(segment), param="filters")


def segment_problem(*, segment: Segment, schema: ListSchema | None = None) -> str | None:
    """Why the segment cannot be evaluated (a field it names was deleted, an option it
    names removed), or None when it can."""
    try:
        _segment_q(segment, schema or ListSchema.load(segment.list))
    except MemberError as error:
        return error.message
    return None


def segment_members(*, segment: Segment) -> QuerySet[Member]:
    """The members the segment selects right now. A segment that no longer fits its list
    selects nobody: a send to it must never widen to members it did not mean."""
    members = Member.objects.filter(list=segment.list, obscured_at__isnull=True)
    try:
        return members.filter(_segment_q(segment, ListSchema.load(segment.list)))
    except MemberError:
        return members.none()


def segment_count(*, segment: Segment) -> int:
    return segment_members(segment=segment).count()


def segment_counts(*, member_list: List, segments: Sequence[Segment]) -> dict[int, int]:
    """Live counts of several segments of one list in one query (one scan of the list);
    a segment that no longer fits its list counts 0."""
    schema = ListSchema.load(member_list)
    counts: dict[int, int] = {}
    aggregates: dict[str, Count] = {}
    for segment in segments:
        if segment.list_id != member_list.pk:
            raise ValueError(f"segment {segment.pk} is not on list {member_list.pk}")
        try:
            aggregates[f"s{segment.pk}"] = Count("pk", filter=_segment_q(segment, schema))
        except MemberError:
            counts[segment.pk] = 0
    if aggregates:
        found = Member.objects.filter(list=member_list, obscured_at__isnull=True).aggregate(
            **aggregates
        )
        counts.update({int(key[1:]): value for key, value in found.items()})
    return counts


# -- webhooks ---------------------------------------------------------------------------


def webhooks_for_list(*, member_list: List) -> QuerySet[Webhook]:
    return Webhook.objects.filter(list=member_list).select_related("list")


def webhook_get(*, member_list: List, webhook_id: int | str) -> Webhook:
    """One of the list's webhooks; a webhook of another list (or account) is a 404."""
    try:
        return Webhook.objects.select_related("list").get(list=member_list, pk=int(webhook_id))
    except (Webhook.DoesNotExist, ValueError, TypeError):
        raise Http404("webhook") from None


def import_get(*, member_list: List, import_id: int | str) -> Import:
    try:
        return Import.objects.select_related("list").get(list=member_list, pk=int(import_id))
    except (Import.DoesNotExist, ValueError, TypeError):
        raise Http404("import") from None
