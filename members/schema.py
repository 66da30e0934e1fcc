"""A list's fields, loaded once per request or job (no query per field or value)."""

from __future__ import annotations

from dataclasses import dataclass

from members.models import Field, List


@dataclass(frozen=True)
class ListSchema:
    member_list: List
    fields: dict[str, Field]
    options: dict[str, dict[int, str]]  # field name -> option value -> label

    @classmethod
    def load(cls, member_list: List) -> ListSchema:
        fields = list(member_list.fields.prefetch_related("options"))
        return cls(
            member_list=member_list,
            fields={f.name: f for f in fields},
            options={f.name: {o.value: o.label for o in f.options.all()} for f in fields},
        )

    def option_ids(self, name: str) -> set[int]:
        return set(self.options.get(name, {}))
