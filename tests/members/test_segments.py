"""The query builder's rule trees, and segments through their services."""

from __future__ import annotations

import pytest

from members import services
from members.fields import FieldSpec
from members.models import Member, MemberStatus
from members.segments import rules_parse, segment_create, segment_update
from members.selectors import (
    Condition,
    Group,
    members_filter,
    rules_from_json,
    segment_count,
    segment_counts,
    segment_members,
    segment_problem,
)
from members.services import MemberError
from tests.conftest import Personas


@pytest.fixture
def shop(personas: Personas):
    return services.list_create(
        account=personas.account_a,
        name="Shop",
        fields=[
            FieldSpec("points", "number", "Points"),
            FieldSpec("interests", "multi", "Interests", options=["Music", "Books"]),
            FieldSpec("shoe", "choice", "Shoe size", options=["40", "41"]),
        ],
    )


@pytest.fixture
def people(shop):
    """Five members: who lives where, with how many points, in which state."""

    def add(email: str, status: str = MemberStatus.ACTIVE, **values) -> Member:
        member = services.member_create(member_list=shop, values={"email": email, **values})
        Member.objects.filter(pk=member.pk).update(status=status, email_status=status)
        return member

    add("ann@x.dk", city="Vejle", points=150)
    add("bo@x.dk", city="Vejle", points=20)
    add("cy@x.dk", city="Aarhus", points=300)
    add("di@x.dk", city="Aarhus", points=10, status=MemberStatus.UNSUBSCRIBED)
    add("ed@x.dk", points=500, status=MemberStatus.BOUNCED)
    return shop


def cond(field: str, op: str, *values: str) -> Condition:
    return Condition(field, op, values)


def emails(shop, rules: Group) -> list[str]:
    segment = segment_create(member_list=shop, name="s", rules=rules)
    return sorted(m.email for m in segment_members(segment=segment))


def test_a_flat_filter_and_the_same_rules_as_a_segment_select_the_same_members(people):
    flat = {"city": {"eq": ["vejle"]}, "points": {"gte": ["100"]}}

    filtered = [m.email for m in members_filter(member_list=people, conditions=flat)]

    assert filtered == ["ann@x.dk"]
    assert emails(people, Group.from_flat(flat, "and")) == filtered


def test_and_needs_every_condition_and_or_needs_one(people):
    rules = (cond("city", "eq", "Vejle"), cond("points", "gte", "100"))

    assert emails(people, Group("and", rules)) == ["ann@x.dk"]
    assert emails(people, Group("or", rules)) == [
        "ann@x.dk",
        "bo@x.dk",
        "cy@x.dk",
        "ed@x.dk",
    ]


def test_nested_groups_combine_an_or_of_ands(people):
    rules = Group(
        "or",
        (
            Group("and", (cond("city", "eq", "Vejle"), cond("points", "lt", "100"))),
            Group("and", (cond("city", "eq", "Aarhus"), cond("points", "gt", "100"))),
        ),
    )

    assert emails(people, rules) == ["bo@x.dk", "cy@x.dk"]


def test_an_and_group_inside_an_and_group_inside_an_or_group(people):
    rules = Group(
        "or",
        (
            cond("email", "eq", "ed@x.dk"),
            Group(
                "and",
                (
                    cond("city", "eq", "Aarhus"),
                    Group("and", (cond("points", "gte", "10"), cond("points", "lte", "10"))),
                ),
            ),
        ),
    )

    assert emails(people, rules) == ["di@x.dk", "ed@x.dk"]


def test_status_rules_select_by_the_members_status(people):
    assert emails(people, Group("and", (cond("status", "eq", "active"),))) == [
        "ann@x.dk",
        "bo@x.dk",
        "cy@x.dk",
    ]
    assert emails(people, Group("and", (cond("status", "nin", "active", "bounced"),))) == [
        "di@x.dk"
    ]
    assert emails(people, Group("and", (cond("status.email", "eq", "bounced"),))) == ["ed@x.dk"]


def test_status_and_fields_mix_in_one_tree(people):
    rules = Group(
        "and",
        (
            cond("status", "neq", "unsubscribed"),
            Group("or", (cond("city", "eq", "Aarhus"), cond("points", "gte", "400"))),
        ),
    )

    assert emails(people, rules) == ["cy@x.dk", "ed@x.dk"]


def test_the_member_filter_reads_statuses_too(people):
    found = members_filter(member_list=people, conditions={"status": {"eq": ["bounced"]}})

    assert [m.email for m in found] == ["ed@x.dk"]


def test_a_list_field_named_status_wins_over_the_member_status(personas: Personas):
    shop = services.list_create(
        account=personas.account_a, name="VIP", fields=[FieldSpec("status", "text", "VIP")]
    )
    services.member_create(member_list=shop, values={"email": "gold@x.dk", "status": "gold"})

    assert emails(shop, Group("and", (cond("status", "eq", "gold"),))) == ["gold@x.dk"]
    assert emails(shop, Group("and", (cond("status.status", "eq", "active"),))) == ["gold@x.dk"]


def test_not_equal_includes_members_without_a_value(people):
    assert emails(people, Group("and", (cond("city", "neq", "Vejle"),))) == [
        "cy@x.dk",
        "di@x.dk",
        "ed@x.dk",
    ]


def test_choice_and_multi_values_are_option_ids(people, shop):
    services.member_create(member_list=shop, values={"email": "m@x.dk", "interests": [1, 2]})
    services.member_create(member_list=shop, values={"email": "n@x.dk", "shoe": 2})

    assert emails(shop, Group("and", (cond("interests", "ina", "1", "2"),))) == ["m@x.dk"]
    assert emails(shop, Group("and", (cond("shoe", "eq", "2"),))) == ["n@x.dk"]


@pytest.mark.parametrize(
    ("rules", "field", "named"),
    [
        (Group("and", (cond("nosuch", "eq", "x"),)), "filters", "'nosuch'"),
        (Group("and", (cond("city", "like", "x"),)), "filters", "'like'"),
        (Group("and", (cond("city", "gt", "x"),)), "filters", "gt"),
        (Group("and", (cond("points", "eq", "many"),)), "filters", "'many'"),
        (Group("and", (cond("shoe", "eq", "9"),)), "filters", "9"),
        (Group("and", (cond("status", "eq", "asleep"),)), "filters", "'asleep'"),
        (Group("and", (cond("status", "ct", "act"),)), "filters", "ct"),
        (Group("xor", (cond("city", "eq", "x"),)), "logic", "'xor'"),
        (Group("and", (Group("nand", (cond("city", "eq", "x"),)),)), "logic", "'nand'"),
        (Group("and", ()), "filters", "at least one condition"),
        (Group("or", (Group("and", ()), cond("city", "ie"))), "filters", "at least one rule"),
    ],
)
def test_a_segment_that_does_not_fit_the_list_is_refused_naming_the_problem(
    shop, rules: Group, field: str, named: str
):
    with pytest.raises(MemberError) as caught:
        segment_create(member_list=shop, name="bad", rules=rules)

    assert caught.value.field == field
    assert named in caught.value.message


def test_a_segment_needs_a_name(shop):
    with pytest.raises(MemberError) as caught:
        segment_create(member_list=shop, name="  ", rules=Group("and", (cond("city", "ie"),)))

    assert caught.value.field == "name"


def test_a_segment_whose_field_was_deleted_selects_nobody_and_says_why(people):
    segment = segment_create(
        member_list=people,
        name="Big spenders",
        rules=Group("or", (cond("points", "gte", "100"), cond("city", "eq", "Vejle"))),
    )
    assert segment_count(segment=segment) == 4

    services.list_set_fields(member_list=people, fields=[], replace=True)  # drops "points"

    assert segment_count(segment=segment) == 0
    assert list(segment_members(segment=segment)) == []
    assert segment_problem(segment=segment) == "'points' is not a field of this list"
    assert segment_counts(member_list=people, segments=[segment]) == {segment.pk: 0}


def test_a_broken_segment_can_be_renamed_and_is_repaired_by_new_rules(people):
    segment = segment_create(
        member_list=people, name="Old", rules=Group("and", (cond("points", "gt", "1"),))
    )
    services.list_set_fields(member_list=people, fields=[], replace=True)

    segment_update(segment=segment, name="Renamed")
    with pytest.raises(MemberError, match="'points'"):
        segment_update(segment=segment, rules=Group("and", (cond("points", "gt", "2"),)))
    segment_update(segment=segment, rules=Group("and", (cond("city", "eq", "Vejle"),)))

    segment.refresh_from_db()
    assert segment.name == "Renamed"
    assert segment_problem(segment=segment) is None
    assert segment_count(segment=segment) == 2


def test_counts_of_several_segments_take_one_query(people, django_assert_num_queries):
    vejle = segment_create(
        member_list=people, name="Vejle", rules=Group("and", (cond("city", "eq", "Vejle"),))
    )
    active = segment_create(
        member_list=people, name="Active", rules=Group("and", (cond("status", "eq", "active"),))
    )

    with django_assert_num_queries(3):  # the list's fields, their options, then the counts
        counts = segment_counts(member_list=people, segments=[vejle, active])

    assert counts == {vejle.pk: 2, active.pk: 3}


def test_counts_are_live(people, shop):
    segment = segment_create(
        member_list=shop, name="Vejle", rules=Group("and", (cond("city", "eq", "Vejle"),))
    )
    assert segment_count(segment=segment) == 2

    services.member_create(member_list=shop, values={"email": "new@x.dk", "city": "Vejle"})

    assert segment_count(segment=segment) == 3


def test_obscured_members_are_in_no_segment(people, shop):
    everyone = cond("status", "in", "active", "unsubscribed", "bounced")
    segment = segment_create(member_list=shop, name="All", rules=Group("and", (everyone,)))
    assert segment_count(segment=segment) == 5

    services.member_obscure(member=Member.objects.get(email="ann@x.dk"))

    assert segment_count(segment=segment) == 4


# -- reading rules from a request -------------------------------------------------------


def test_the_php_flat_filters_read_as_one_group():
    rules = rules_parse(
        filters={"firstname": {"eq": ["test"]}, "points": {"gte": ["1"], "lt": ["9"]}},
        logic="OR",
    )

    assert rules == Group(
        "or",
        (cond("firstname", "eq", "test"), cond("points", "gte", "1"), cond("points", "lt", "9")),
    )
    assert rules.flat() == {"firstname": {"eq": ["test"]}, "points": {"gte": ["1"], "lt": ["9"]}}


def test_a_tree_reads_from_json_and_the_top_level_logic_fills_in_only_where_missing():
    tree = {
        "rules": [
            {"field": "city", "op": "eq", "values": ["Vejle"]},
            {"logic": "and", "rules": [{"field": "points", "op": "gte", "values": [100]}]},
        ]
    }

    rules = rules_parse(filters=tree, logic="or")

    assert rules == Group(
        "or", (cond("city", "eq", "Vejle"), Group("and", (cond("points", "gte", "100"),)))
    )
    assert rules.flat() is None
    assert rules_from_json(rules.to_json()) == rules
    assert rules_parse(filters={**tree, "logic": "and"}, logic="or").logic == "and"


def test_a_tree_arrives_as_a_json_string_or_in_bracket_syntax():
    as_string = rules_parse(
        filters='{"logic": "or", "rules": [{"field": "city", "op": "ie"}]}', logic=None
    )
    as_brackets = rules_parse(
        filters={"logic": "or", "rules": [{"field": "city", "op": "ie", "values": [""]}]}
    )

    assert as_string == as_brackets == Group("or", (cond("city", "ie"),))


@pytest.mark.parametrize(
    ("filters", "logic", "field", "named"),
    [
        ({"city": {"like": ["x"]}}, None, "filters[city]", "'like'"),
        ({"city": {"eq": ["x"]}}, "xor", "logic", "'xor'"),
        ({"rules": [{"field": "city", "op": "like"}]}, None, "filters", "'like'"),
        ({"logic": "xor", "rules": [{"field": "city", "op": "ie"}]}, None, "logic", "'xor'"),
        ({"rules": []}, None, "filters", "at least one rule"),
        ({"rules": [{"op": "eq"}]}, None, "filters", "filters[rules][0]"),
        ("{not json", None, "filters", "not valid JSON"),
    ],
)
def test_bad_rules_in_a_request_are_named(filters, logic, field: str, named: str):
    with pytest.raises(MemberError) as caught:
        rules_parse(filters=filters, logic=logic)

    assert caught.value.field == field
    assert named in caught.value.message


def test_a_tree_may_not_nest_without_bound():
    tree: dict = {"field": "city", "op": "ie"}
    for _ in range(9):
        tree = {"logic": "and", "rules": [tree]}

    with pytest.raises(MemberError, match="at most 8 deep"):
        rules_parse(filters=tree)
