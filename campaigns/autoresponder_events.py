"""What the member write paths tell the autoresponders: a watched field changed, an import
asked for its new members to count as subscribed.

Called from members/services.py and members/imports.py in their transactions. Those
modules import this one lazily: members does not otherwise depend on campaigns, and
nothing here imports members' services.

Only fields that an active "field changed" autoresponder of the list watches are
recorded, so a list without one pays a single cheap query per member update (nothing
at all per import row). The value before is the one the writer read: a change made
between that read and the write by someone else is attributed to this write.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.db import connection
from django.utils import timezone

from campaigns.models_autoresponders import FieldChange, ImportTrigger, TriggerKind

_WATCHED = """SELECT DISTINCT field_name FROM campaigns_autoresponder
              WHERE list_id = %s AND active AND trigger = %s AND field_name <> ''"""


def fields_watched(*, list_id: int) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(_WATCHED, [list_id, TriggerKind.FIELD_CHANGED.value])
        return [name for (name,) in cursor.fetchall()]


def member_fields_changed(
    *, list_id: int, member_id: Any, before: dict[str, Any], after: dict[str, Any]
) -> int:
    """Record the watched fields whose value differs between ``before`` and ``after`` (a
    member's ``data``); one statement. Returns how many were recorded."""
    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO campaigns_fieldchange (list_id, member_id, field, old, new, changed_at)
               SELECT %(list)s, %(member)s::uuid, w.field_name, %(old)s::jsonb -> w.field_name,
                      %(new)s::jsonb -> w.field_name, %(now)s
               FROM (SELECT DISTINCT field_name FROM campaigns_autoresponder
                     WHERE list_id = %(list)s AND active AND trigger = %(trigger)s
                       AND field_name <> '') w
               WHERE (%(old)s::jsonb -> w.field_name) IS DISTINCT FROM
                     (%(new)s::jsonb -> w.field_name)""",
            {
                "list": list_id,
                "member": str(member_id),
                "old": json.dumps(before),
                "new": json.dumps(after),
                "now": timezone.now(),
                "trigger": TriggerKind.FIELD_CHANGED.value,
            },
        )
        return int(cursor.rowcount)


def import_fields_changed(
    cursor: Any, *, list_id: int, source: str, new_data: str, params: dict[str, Any]
) -> int:
    """The import's UPDATE is about to set ``data`` to ``new_data`` for the members that
    ``source`` (``FROM … JOIN members_member m …``) finds: record the watched fields it
    changes, before it does. ``source`` and ``new_data`` are the import's own SQL, whose
    values are bound in ``params``; ``params["now"]`` is the time of the change."""
    watched = fields_watched(list_id=list_id)
    if not watched:
        return 0
    cursor.execute(
        f"""INSERT INTO campaigns_fieldchange (list_id, member_id, field, old, new, changed_at)
            SELECT m.list_id, m.id, w.field, m.data -> w.field, ({new_data}) -> w.field,
                   %(now)s
            {source} CROSS JOIN unnest(%(watched_fields)s::text[]) AS w(field)
            WHERE (m.data -> w.field) IS DISTINCT FROM (({new_data}) -> w.field)""",  # noqa: S608 - our own SQL fragments  # nosec B608
        {**params, "watched_fields": watched},
    )
    return int(cursor.rowcount)


def import_members_trigger(*, list_id: int, members_created_at: datetime) -> None:
    """An import that asked for autoresponders created members stamped ``members_created_at``."""
    ImportTrigger.objects.create(list_id=list_id, members_created_at=members_created_at)


def field_changes_prune(*, before: datetime) -> int:
    """Changes older than any evaluation looks back are of no more use."""
    deleted, _ = FieldChange.objects.filter(changed_at__lt=before).delete()
    return deleted
