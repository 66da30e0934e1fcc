"""Every write to segments (heyloyalty-api.md §5.5), and reading their rules from a request.

A segment's rules are a tree (members.selectors: conditions combined by ``and``/``or``
groups, groups within groups). Clients send them in one of two forms, both accepted by
:func:`rules_parse`:

* Heyloyalty's flat ``filters[<field>][<op>][]=<value>`` with one ``logic``, as the PHP
  client does (``filters[firstname][eq][0]=test&logic=and``);
* our nested form, ``{"logic": "or", "rules": [{"field": "city", "op": "eq", "values":
  ["Vejle"]}, {"logic": "and", "rules": […]}]}``, as JSON or in bracket syntax.

Every field and operator is checked against the list when a segment is saved; a field
deleted later makes the segment select nobody (see ``selectors.segment_members``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from django.db import transaction

from heyloyalty.api.params import ParamError, parse_filter
from members.models import List, Segment
from members.schema import ListSchema
from members.selectors import LOGICS, Group, rules_from_json, rules_q
from members.services import MemberError

NAME_MAX = 200


def rules_parse(*, filters: Any, logic: str | None = None, param: str = "filters") -> Group:
    """The rule tree from a request's ``filters`` (flat or nested) and ``logic``.

    In the nested form the tree's own ``logic`` wins; ``logic`` applies where the tree
    has none. Checks shape, logic and operators; fields are checked when saving.
    """
    if logic is not None:
        logic = logic.strip().lower()
        if logic not in LOGICS:
            raise MemberError("logic", f"logic must be and or or, not {logic!r}")
    if isinstance(filters, str) and filters.strip().startswith("{"):
        try:
            filters = json.loads(filters)
        except ValueError:
            raise MemberError(param, f"{param} is not valid JSON") from None
    if _is_tree(filters):
        tree = dict(filters)
        if logic and not tree.get("logic"):
            tree["logic"] = logic
        return rules_from_json(tree, param=param)
    try:
        conditions = parse_filter(filters, field=param)
    except ParamError as error:
        raise MemberError(error.field or param, error.message) from None
    return Group.from_flat(conditions, logic or "and")


def _is_tree(value: Any) -> bool:
    """The nested form has a ``rules`` list; in the flat form ``rules`` would be a field
    mapping operators to values."""
    if not isinstance(value, Mapping):
        return False
    rules = value.get("rules")
    if isinstance(rules, list):
        return True
    # A JSON object with index keys is how PHP's json_encode writes a sparse array.
    return isinstance(rules, Mapping) and bool(rules) and all(str(k).isdigit() for k in rules)


def _clean_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise MemberError("name", "a segment needs a name")
    if len(name) > NAME_MAX:
        raise MemberError("name", f"a segment name is at most {NAME_MAX} characters")
    return name


def _check(member_list: List, rules: Group) -> None:
    """Every field, operator and value must fit the list (raises MemberError naming it).
    The tree goes through its JSON form once, so what is stored is what loads back (no
    empty group, no deeper or larger tree than a request may send)."""
    if next(rules.conditions(), None) is None:
        raise MemberError("filters", "a segment needs at least one condition")
    rules_from_json(rules.to_json(), param="filters")
    rules_q(ListSchema.load(member_list), rules, param="filters")


@transaction.atomic
def segment_create(*, member_list: List, name: str, rules: Group) -> Segment:
    name = _clean_name(name)
    _check(member_list, rules)
    return Segment.objects.create(list=member_list, name=name, rules=rules.to_json())


@transaction.atomic
def segment_update(
    *, segment: Segment, name: str | None = None, rules: Group | None = None
) -> Segment:
    """Change what is given; a segment whose rules no longer fit the list can still be
    renamed, and is repaired by giving it new rules."""
    fields = ["updated_at"]
    if name is not None:
        segment.name = _clean_name(name)
        fields.append("name")
    if rules is not None:
        _check(segment.list, rules)
        segment.rules = rules.to_json()
        fields.append("rules")
    segment.save(update_fields=fields)
    return segment


@transaction.atomic
def segment_delete(*, segment: Segment) -> None:
    segment.delete()
