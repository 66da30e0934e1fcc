"""A list's fields, loaded once per request or job (no query per field or value)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

from members.models import Field, FieldOption, List

# ListSchema.kept: a list's fields stay in process memory while the list's updated_at stays
# the same (services.list_set_fields moves it with every change of fields or options), and
# at most this long, so that a change made around the services (a restore, SQL by hand) is
# seen too.
KEEP_SECONDS = 10.0
KEEP_LISTS = 1000


@dataclass(frozen=True)
class _Kept:
    version: datetime
    fields: dict[str, Field]
    expires: float  # _clock()


_kept: dict[int, _Kept] = {}
_clock = time.monotonic  # replaced by tests


@dataclass(frozen=True)
class ListSchema:
    member_list: List
    fields: dict[str, Field]

    @classmethod
    def load(cls, member_list: List, *, options: bool = True) -> ListSchema:
        """The list's fields and, unless ``options=False``, their options (one query each).

        ``options=False`` leaves the options to be loaded on first use: a member write only
        needs them when it sets a choice field, and most API writes set none.
        """
        # Field.objects rather than member_list.fields: the same rows without building a
        # related manager, which costs more than the query on the API's hot path.
        fields = Field.objects.filter(list_id=member_list.pk)
        schema = cls(member_list=member_list, fields={f.name: f for f in fields})
        if options:
            schema.options  # noqa: B018 - load them now
        return schema

    @classmethod
    def kept(cls, member_list: List) -> ListSchema:
        """``load(member_list, options=False)``, without the query while this process holds
        the fields of this version of the list (see KEEP_SECONDS).

        For a list just read from the database (the API's member writes, where the field
        query was a fifth of the cost). The Field rows are shared between requests and
        threads: read them, never change them.
        """
        now = _clock()
        kept = _kept.get(member_list.pk)
        if kept is not None and kept.version == member_list.updated_at and kept.expires > now:
            return cls(member_list=member_list, fields=kept.fields)
        schema = cls.load(member_list, options=False)
        if len(_kept) >= KEEP_LISTS:
            _kept.clear()  # a bound on memory; lists in use are loaded again
        _kept[member_list.pk] = _Kept(member_list.updated_at, schema.fields, now + KEEP_SECONDS)
        return schema

    @cached_property
    def options(self) -> dict[str, dict[int, str]]:
        """Field name -> option value -> label, for every field (empty for most)."""
        names = {f.pk: name for name, f in self.fields.items()}
        options: dict[str, dict[int, str]] = {name: {} for name in self.fields}
        # Plain rows, not model instances: the labels are all that is needed.
        rows = FieldOption.objects.filter(field_id__in=names).values_list(
            "field_id", "value", "label"
        )
        for field_id, value, label in rows:
            options[names[field_id]][value] = label
        return options

    def option_ids(self, name: str) -> set[int]:
        field = self.fields.get(name)
        if field is None or not field.has_options:
            return set()  # what clean_value ignores need not load the options
        return set(self.options.get(name, {}))
