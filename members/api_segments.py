"""Segments in the Heyloyalty API (heyloyalty-api.md §5.5, S1 to S5).

The PHP client posts ``name``, ``logic`` and ``filters[<field>][<op>][]=<value>``
(multipart on POST, urlencoded on PUT). ``filters`` may also hold our nested form; see
members.segments. Every list is looked up through the calling key's account and every
segment through its list, so another account's ids answer 404.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from heyloyalty.api.base import ApiView
from heyloyalty.api.params import ParamError, Params
from members import segments, selectors
from members.models import List, Segment
from members.schema import ListSchema
from members.selectors import Group
from members.serializers import stamp

JSON = OpenApiTypes.OBJECT

RULES_DESCRIPTION = """\
Body: `name`, `logic` (`and` or `or`, default `and`) and `filters`.

`filters` is Heyloyalty's member filter syntax (field → operator → values), as the PHP
client sends it: `filters[firstname][eq][0]=test&filters[points][gte][0]=10&logic=and`.
Several values for one operator match any of them.

Groups within groups: `filters` may instead be a tree, as JSON or in bracket syntax:

```json
{"logic": "or", "rules": [
  {"field": "city", "op": "eq", "values": ["Vejle"]},
  {"logic": "and", "rules": [
    {"field": "points", "op": "gte", "values": ["100"]},
    {"field": "status", "op": "eq", "values": ["active"]}]}]}
```

A group has `logic` and `rules` (at least one; at most 8 levels, 200 conditions); a
condition has `field`, `op` and `values`. The tree's own `logic` wins over the
top-level one.

Fields are the list's fields. Member statuses read like fields: `status` (the member's
status; a list field named `status` takes precedence, `status.status` always means the
member's), `status.email`, `status.mobile`, with `eq`, `neq`, `in`, `nin` and the values
`active`, `unconfirmed`, `unsubscribed`, `bounced`, `complained`.

Operators: `eq`, `neq`, `sw`, `ew`, `ct`, `nct`, `gt`, `gte`, `lt`, `lte`, `in`, `nin`,
`ina`, `ie`, `nie` (heyloyalty-api.md §6). An unknown field, an operator that does not fit
the field, or a bad value answers 400 `{"error", "field"}` naming it.

A segment is `{id, list_id, name, logic, filters, rules, count, valid, problem,
created_at, updated_at}`. `count` is live. `filters` is the flat form when the rules have
one, else the tree; `rules` is always the tree. When a field a segment names is deleted
from the list, the segment selects nobody: `count` is 0, `valid` false and `problem` says
why, until new `filters` are saved.
"""

FLAT_EXAMPLE = OpenApiExample(
    "flat (PHP client)",
    value={"name": "Navn er test", "logic": "and", "filters": {"firstname": {"eq": ["test"]}}},
    request_only=True,
)
TREE_EXAMPLE = OpenApiExample(
    "nested groups",
    value={
        "name": "Vejle, or loyal and active",
        "filters": {
            "logic": "or",
            "rules": [
                {"field": "city", "op": "eq", "values": ["Vejle"]},
                {
                    "logic": "and",
                    "rules": [
                        {"field": "points", "op": "gte", "values": ["100"]},
                        {"field": "status", "op": "eq", "values": ["active"]},
                    ],
                },
            ],
        },
    },
    request_only=True,
)


def segment_json(segment: Segment, *, count: int, problem: str | None) -> dict[str, Any]:
    rules = selectors.segment_rules(segment)
    flat = rules.flat()
    tz = segment.list.timezone
    return {
        "id": segment.pk,
        "list_id": segment.list_id,
        "name": segment.name,
        "logic": rules.logic,
        "filters": flat if flat is not None else rules.to_json(),
        "rules": rules.to_json(),
        "count": count,
        "valid": problem is None,
        "problem": problem,
        "created_at": stamp(segment.created_at, tz),
        "updated_at": stamp(segment.updated_at, tz),
    }


def _text(params: Params, name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, str | int | float):
        raise ParamError(f"{name} must be a single value", field=name)
    return str(value)


def _rules(params: Params) -> Group | None:
    """The rules sent, or None. ``filter`` (singular, as in member listing) is read when
    ``filters`` is absent, so a client that mixes them up does not save an empty segment."""
    key = "filters" if "filters" in params else "filter" if "filter" in params else None
    if key is None:
        return None
    return segments.rules_parse(filters=params[key], logic=_text(params, "logic"))


class SegmentsView(ApiView):
    def _list(self, request: Request, list_id: str) -> List:
        return selectors.list_get(account=self.account(request), list_id=list_id)

    @extend_schema(
        operation_id="segments_index",
        summary="A list's segments, with live counts",
        responses={200: JSON, 404: JSON},
    )
    def get(self, request: Request, list_id: str) -> Response:
        member_list = self._list(request, list_id)
        found = list(selectors.segments_for_list(member_list=member_list))
        counts = selectors.segment_counts(member_list=member_list, segments=found)
        schema = ListSchema.load(member_list)
        return Response(
            [
                segment_json(
                    s,
                    count=counts[s.pk],
                    problem=selectors.segment_problem(segment=s, schema=schema),
                )
                for s in found
            ]
        )

    @extend_schema(
        operation_id="segments_create",
        summary="Create a segment",
        description=RULES_DESCRIPTION,
        request={"multipart/form-data": JSON, "application/json": JSON},
        examples=[FLAT_EXAMPLE, TREE_EXAMPLE],
        responses={201: JSON, 400: JSON, 404: JSON},
    )
    def post(self, request: Request, list_id: str) -> Response:
        member_list = self._list(request, list_id)
        params = self.params(request)
        rules = _rules(params)
        if rules is None:
            raise ParamError("filters is required", field="filters")
        segment = segments.segment_create(
            member_list=member_list, name=_text(params, "name") or "", rules=rules
        )
        return Response({"id": segment.pk}, status=201)


class SegmentDetailView(ApiView):
    def _segment(self, request: Request, list_id: str, segment_id: str) -> Segment:
        member_list = selectors.list_get(account=self.account(request), list_id=list_id)
        return selectors.segment_get(member_list=member_list, segment_id=segment_id)

    @extend_schema(
        operation_id="segments_read",
        summary="A segment with its live count",
        responses={200: JSON, 404: JSON},
    )
    def get(self, request: Request, list_id: str, segment_id: str) -> Response:
        segment = self._segment(request, list_id, segment_id)
        problem = selectors.segment_problem(segment=segment)
        count = 0 if problem else selectors.segment_count(segment=segment)
        return Response(segment_json(segment, count=count, problem=problem))

    @extend_schema(
        operation_id="segments_update",
        summary="Change a segment's name, logic or filters",
        description=RULES_DESCRIPTION
        + "\nWhat is sent is replaced; `logic` alone changes how the top level combines.",
        request={"application/x-www-form-urlencoded": JSON, "application/json": JSON},
        examples=[FLAT_EXAMPLE, TREE_EXAMPLE],
        responses={204: None, 400: JSON, 404: JSON},
    )
    def put(self, request: Request, list_id: str, segment_id: str) -> Response:
        segment = self._segment(request, list_id, segment_id)
        params = self.params(request)
        rules = _rules(params)
        logic = _text(params, "logic")
        if rules is None and logic is not None:
            rules = Group(logic.strip().lower(), selectors.segment_rules(segment).rules)
        segments.segment_update(segment=segment, name=_text(params, "name"), rules=rules)
        return Response(status=204)

    @extend_schema(
        operation_id="segments_delete",
        summary="Delete a segment",
        responses={204: None, 404: JSON},
    )
    def delete(self, request: Request, list_id: str, segment_id: str) -> Response:
        segments.segment_delete(segment=self._segment(request, list_id, segment_id))
        return Response(status=204)
