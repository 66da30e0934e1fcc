"""The lists and members part of the Heyloyalty API (heyloyalty-api.md §5.1, §5.2, §6).

Views are thin: parse with the shared extractor, call a selector or service, shape the
answer with members.serializers. Scoping: every list is looked up through the calling
key's account, so another account's ids answer 404.
"""

from __future__ import annotations

from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from heyloyalty.api.base import ApiView
from heyloyalty.api.params import ParamError, Params, parse_filter, to_bool, to_int, to_list
from heyloyalty.net import client_ip
from members import selectors, services
from members.exports import csv_download
from members.fields import COUNTRIES, FieldValueError, clean_email
from members.imports import ImportOptions, import_create, import_report_rows
from members.models import Duplicates, HandleExisting, Import, List, Member
from members.schema import ListSchema
from members.serializers import list_json, list_summary, member_json, stamp
from members.services import Consent, MemberError

MAX_PERPAGE = 5000
JSON = OpenApiTypes.OBJECT
# Answers that are a JSON array of objects (the schema said object; schemathesis, issue 8).
JSON_ARRAY = {"type": "array", "items": {"type": "object", "additionalProperties": {}}}


def _list_settings(params: Params) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    if "name" in params:
        settings["name"] = str(params["name"])
    if "country_id" in params:
        settings["country_id"] = to_int(params["country_id"], field="country_id")
    if "duplicates" in params:
        value = str(params["duplicates"])
        if value not in Duplicates.values:
            raise ParamError(
                f"duplicates must be one of {', '.join(Duplicates.values)}", field="duplicates"
            )
        settings["duplicates"] = Duplicates(value)
    for key in ("double_optin", "double_opt-in"):
        if key in params:
            settings["double_optin"] = to_bool(params[key], field=key)
    if "date_format" in params:
        settings["date_format"] = str(params["date_format"])
    return settings


def _field_specs(params: Params) -> list[services.FieldSpec]:
    raw = params.get("fields") or []
    if isinstance(raw, dict):
        raw = list(raw.values())
    if not isinstance(raw, list) or not all(isinstance(f, dict) for f in raw):
        raise ParamError("fields must be a list of field definitions", field="fields")
    return [services.field_spec_from_api(f) for f in raw]


def _list_answer(member_list: List) -> dict[str, Any]:
    schema = ListSchema.load(member_list)
    return list_json(member_list, schema, member_count=member_list.members.count())


class ListsView(ApiView):
    @extend_schema(operation_id="lists_index", summary="All lists", responses={200: JSON_ARRAY})
    def get(self, request: Request) -> Response:
        lists = selectors.lists_for_account(account=self.account(request))
        return Response([list_summary(lst, member_count=lst.member_count) for lst in lists])  # type: ignore[attr-defined]

    @extend_schema(
        operation_id="lists_create",
        summary="Create a list",
        request=JSON,
        responses={201: JSON, 400: JSON},
    )
    def post(self, request: Request) -> Response:
        params = self.params(request)
        settings = _list_settings(params)
        if not settings.get("name"):
            raise ParamError("name is required", field="name")
        member_list = services.list_create(
            account=self.account(request), fields=_field_specs(params), **settings
        )
        return Response({"id": member_list.pk}, status=201)


class CountriesView(ApiView):
    @extend_schema(
        operation_id="lists_countries", summary="Country ids", responses={200: JSON_ARRAY}
    )
    def get(self, request: Request) -> Response:
        return Response([{"id": cid, "name": name, "code": code} for cid, name, code in COUNTRIES])


class ListDetailView(ApiView):
    def _list(self, request: Request, list_id: str) -> List:
        return selectors.list_get(account=self.account(request), list_id=list_id)

    @extend_schema(
        operation_id="lists_read",
        summary="A list with its fields",
        responses={200: JSON, 404: JSON},
    )
    def get(self, request: Request, list_id: str) -> Response:
        return Response(_list_answer(self._list(request, list_id)))

    @extend_schema(
        operation_id="lists_update",
        summary="Change a list; its fields are replaced",
        request=JSON,
        responses={200: JSON, 400: JSON, 404: JSON},
    )
    def put(self, request: Request, list_id: str) -> Response:
        member_list = self._list(request, list_id)
        params = self.params(request)
        services.list_update(member_list=member_list, **_list_settings(params))
        if "fields" in params:
            services.list_set_fields(
                member_list=member_list, fields=_field_specs(params), replace=True
            )
        return Response(_list_answer(member_list))

    @extend_schema(
        operation_id="lists_delete",
        summary="Delete a list and its members",
        responses={204: None, 404: JSON},
    )
    def delete(self, request: Request, list_id: str) -> Response:
        services.list_delete(member_list=self._list(request, list_id))
        return Response(status=204)


class ListPatchV2View(ListDetailView):
    """``PATCH /loyalty/v2/lists/{id}``: new fields are added, sent ones changed, the rest
    left alone."""

    http_method_names = ["patch", "options"]

    @extend_schema(
        operation_id="lists_v2_patch",
        summary="Add or change fields (v2)",
        request=JSON,
        responses={200: JSON, 400: JSON, 404: JSON},
    )
    def patch(self, request: Request, list_id: str) -> Response:
        member_list = self._list(request, list_id)
        params = self.params(request)
        services.list_update(member_list=member_list, **_list_settings(params))
        services.list_set_fields(
            member_list=member_list, fields=_field_specs(params), replace=False
        )
        return Response(_list_answer(member_list))


def _member_values(params: Params) -> dict[str, Any]:
    """Member fields sit at the top level, or under ``member[...]`` (upsert)."""
    nested = params.get("member")
    return dict(nested) if isinstance(nested, dict) else dict(params)


def _consent(request: Request, params: Params) -> Consent:
    return Consent(
        source="api",
        ip=client_ip(request._request) or None,
        text=str(params.get("consent_text") or ""),
    )


class MembersView(ApiView):
    @extend_schema(
        operation_id="members_index",
        summary="Members of a list, filtered and paged",
        parameters=[
            OpenApiParameter("page", int),
            OpenApiParameter("perpage", int),
            OpenApiParameter("orderby", str),
            OpenApiParameter("order", int),
            OpenApiParameter("logic", str),
            OpenApiParameter("filter", str, description="filter[<field>][<op>][]=<value>"),
        ],
        responses={200: JSON, 400: JSON, 404: JSON},
    )
    def get(self, request: Request, list_id: str) -> Response:
        member_list = selectors.list_get(account=self.account(request), list_id=list_id)
        params = self.params(request)
        page = max(1, to_int(params.get("page", 1), field="page"))
        perpage = to_int(params.get("perpage", 50), field="perpage")
        if not 1 <= perpage <= MAX_PERPAGE:
            raise ParamError(f"perpage must be between 1 and {MAX_PERPAGE}", field="perpage")
        members = selectors.members_filter(
            member_list=member_list,
            conditions=parse_filter(params.get("filter") or {}),
            logic=str(params.get("logic") or "and").lower(),
            order_by=str(params.get("orderby") or "created_at"),
            descending=str(params.get("order", "1")).strip().startswith("-"),
        )
        schema = ListSchema.load(member_list)
        total = members.count()
        start = (page - 1) * perpage
        return Response(
            {
                "members": [member_json(m, schema) for m in members[start : start + perpage]],
                "total": total,
                "page": page,
                "perpage": perpage,
            }
        )

    @extend_schema(
        operation_id="members_create",
        summary="Add a member",
        request=JSON,
        responses={201: JSON, 400: JSON, 404: JSON},
    )
    def post(self, request: Request, list_id: str) -> Response:
        member_list = selectors.list_get(account=self.account(request), list_id=list_id)
        params = self.params(request)
        member = services.member_create(
            member_list=member_list,
            values=_member_values(params),
            consent=_consent(request, params),
            skip_optin=_skip_optin(params),
            schema=ListSchema.kept(member_list),  # the busiest write: no field query
        )
        return Response({"id": str(member.pk)}, status=201)


def _skip_optin(params: Params) -> bool:
    return to_bool(params.get("skipOptIn", "0"), field="skipOptIn")


class MemberUpsertView(ApiView):
    @extend_schema(
        operation_id="members_upsert",
        summary="Create or update by a unique field",
        request=JSON,
        responses={200: JSON, 201: JSON, 400: JSON, 404: JSON},
    )
    def post(self, request: Request, list_id: str) -> Response:
        member_list = selectors.list_get(account=self.account(request), list_id=list_id)
        params = self.params(request)
        unique_field = str(params.get("unique_field") or "")
        if not unique_field:
            raise ParamError("unique_field is required", field="unique_field")
        kind, member = services.member_upsert(
            member_list=member_list,
            unique_field=unique_field,
            values=_member_values(params),
            include_unconfirmed=to_bool(
                params.get("search_temporary", "1"), field="search_temporary"
            ),
            skip_optin=_skip_optin(params),
            consent=_consent(request, params),
        )
        return Response(
            {"type": kind, "member_id": str(member.pk)}, status=201 if kind == "create" else 200
        )


BULK_DESCRIPTION = """\
Copy (`copy`) or move (`move`: copy, then delete from this list) members of this list to
another list of the same account. All or nothing: one transaction.

Body, in any encoding (JSON, urlencoded, multipart, PHP bracket keys such as
`handleDuplicates[field]`):

* `listId`: the target list (another account's list answers 404).
* `members`: the ids of members of this list (`members[]=…`, `members[0]=…` or a JSON
  array). An id that is not a member of this list answers 400 naming it, and nothing
  is copied.
* `handleDuplicates[field]`: `email` (default), `mobile`, or `both` (either one matches).
* `handleDuplicates[action]`: what happens to a target member that matches: `skip`
  (default: leave it), `patch` (keep it, fill only its empty fields) or `update`
  (replace its fields, email and mobile with the copied member's). It keeps its id,
  status and consent either way: an unsubscribed member is not made active again.

Values travel to the target's fields of the same name; choices by their label, since
option ids differ between lists. A value the target field cannot hold is dropped.

Answer: `{"copied", "patched", "updated", "skipped", "removed", "errors"}`. `errors`
names each member left alone (`{"member", "field", "error"}`): its email or mobile
belongs to another member of a target list that refuses duplicates, or it lacks a
field the target requires. A move keeps those members on this list.
"""


def _one_of(params: Params, name: str, key: str, allowed: tuple[str, ...], default: str) -> str:
    """``handleDuplicates[key]``, one of ``allowed``."""
    group = params.get(name)
    if group is None:
        group = {}
    if not isinstance(group, dict):
        raise ParamError(f"{name} must hold field and action", field=name)
    values = to_list(group.get(key))
    text = (str(values[0]).strip() if len(values) == 1 else ",".join(map(str, values))) or default
    if text not in allowed:
        raise ParamError(
            f"{name}[{key}] must be one of {', '.join(allowed)}", field=f"{name}[{key}]"
        )
    return text


def _bulk_member_ids(params: Params) -> list[str]:
    ids: list[str] = []
    for value in to_list(params.get("members")):
        if not isinstance(value, str | int):
            raise ParamError("members must be a list of member ids", field="members")
        ids += [part for part in str(value).split(",") if part.strip()]
    return ids


class MembersBulkView(ApiView):
    """``POST lists/{id}/members/bulk/{copy|move}`` (heyloyalty-api.md M8; [m2]
    moveListMembers)."""

    @extend_schema(
        operation_id="members_bulk",
        summary="Copy or move members to another list",
        description=BULK_DESCRIPTION,
        parameters=[OpenApiParameter("action", str, OpenApiParameter.PATH, enum=["copy", "move"])],
        request=JSON,
        responses={200: JSON, 400: JSON, 404: JSON},
    )
    def post(self, request: Request, list_id: str, action: str) -> Response:
        account = self.account(request)
        source = selectors.list_get(account=account, list_id=list_id)
        params = self.params(request)
        target_id = params.get("listId", params.get("list_id"))
        target = selectors.list_get(account=account, list_id=to_int(target_id, field="listId"))
        result = services.members_bulk_copy(
            source=source,
            target=target,
            member_ids=_bulk_member_ids(params),
            match=_one_of(params, "handleDuplicates", "field", services.BULK_MATCH_FIELDS, "email"),
            action=_one_of(params, "handleDuplicates", "action", services.BULK_ACTIONS, "skip"),
            move=action == "move",
        )
        return Response(result.to_json())


class MemberDetailView(ApiView):
    def _member(self, request: Request, list_id: str, member_id: str) -> Member:
        member_list = selectors.list_get(account=self.account(request), list_id=list_id)
        return selectors.member_get(member_list=member_list, member_id=member_id)

    @extend_schema(
        operation_id="members_read", summary="A member", responses={200: JSON, 404: JSON}
    )
    def get(self, request: Request, list_id: str, member_id: str) -> Response:
        member = self._member(request, list_id, member_id)
        return Response(member_json(member, ListSchema.load(member.list)))

    @extend_schema(
        operation_id="members_update",
        summary="Replace a member's fields (fields not sent are cleared)",
        request=JSON,
        responses={204: None, 400: JSON, 404: JSON},
    )
    def put(self, request: Request, list_id: str, member_id: str) -> Response:
        member = self._member(request, list_id, member_id)
        services.member_update(
            member=member, values=_member_values(self.params(request)), replace=True
        )
        return Response(status=204)

    @extend_schema(
        operation_id="members_update_post",
        summary="Same as PUT (older PHP clients send POST)",
        request=JSON,
        responses={204: None, 400: JSON, 404: JSON},
    )
    def post(self, request: Request, list_id: str, member_id: str) -> Response:
        return self.put(request, list_id, member_id)

    @extend_schema(
        operation_id="members_patch",
        summary="Change some of a member's fields",
        request=JSON,
        responses={204: None, 400: JSON, 404: JSON},
    )
    def patch(self, request: Request, list_id: str, member_id: str) -> Response:
        member = self._member(request, list_id, member_id)
        services.member_update(
            member=member, values=_member_values(self.params(request)), replace=False
        )
        return Response(status=204)

    @extend_schema(
        operation_id="members_delete",
        summary="Delete a member, or obscure it with obscureMemberData=1",
        responses={204: None, 404: JSON},
    )
    def delete(self, request: Request, list_id: str, member_id: str) -> Response:
        member = self._member(request, list_id, member_id)
        if to_bool(self.params(request).get("obscureMemberData", "0"), field="obscureMemberData"):
            services.member_obscure(member=member)
        else:
            services.member_delete(member=member)
        return Response(status=204)


class MembersByFieldV2View(ApiView):
    """``DELETE /loyalty/v2/lists/members/byfield``: Magento's unsubscribe. 2xx even when
    nothing matched."""

    http_method_names = ["delete", "options"]

    @extend_schema(
        operation_id="members_v2_delete_by_field",
        request=JSON,
        summary="Delete the members whose field has a value, on some lists",
        responses={200: JSON, 400: JSON},
    )
    def delete(self, request: Request) -> Response:
        params = self.params(request)
        field = str(params.get("field") or "")
        if field not in ("email", "mobile"):
            raise ParamError("field must be email or mobile", field="field")
        value = params.get("value")
        if value in (None, ""):
            raise ParamError("value is required", field="value")
        list_ids = [to_int(v, field="lists") for v in to_list(params.get("lists") or [])]
        lists = List.objects.filter(account=self.account(request))
        if list_ids:
            lists = lists.filter(pk__in=list_ids)
        deleted = 0
        for member_list in lists:
            try:
                found = selectors.members_filter(
                    member_list=member_list, conditions={field: {"eq": [str(value)]}}
                )
            except MemberError:
                continue
            for member in found:
                services.member_delete(member=member)
                deleted += 1
        return Response({"deleted": deleted})


# -- imports (heyloyalty-api.md §5.3; progress is our addition, DESIGN.md) --------------


def _import_options(params: Params) -> ImportOptions:
    def flag(name: str) -> bool:
        return to_bool(params.get(name, "0"), field=name)

    selected = params.get("fields_selected")
    has_header = None
    if "skip_header_line" in params:
        has_header = flag("skip_header_line")
    send_to = str(params.get("sendErrorsTo") or "").strip()
    if send_to:
        try:
            send_to = clean_email(send_to)
        except FieldValueError:
            raise ParamError("sendErrorsTo is not an email address", field="sendErrorsTo") from None
    return ImportOptions(
        fields_selected=[str(v or "") for v in to_list(selected)] if selected is not None else None,
        duplicate_field=str(params.get("duplicate_field") or "email"),
        handle_existing=str(params.get("handle_existing") or HandleExisting.UPDATE),
        delimiter=str(params.get("delimiter") or "") or None,
        has_header=has_header,
        date_format=str(params.get("date_format") or "") or None,
        encoding=str(params.get("encoding") or "") or None,
        trigger_optin=flag("trigger_optin"),
        trigger_autoresponder=flag("trigger_autoresponder"),
        empty_field=flag("empty_field"),
        resubscribe=flag("resubscribe"),
        send_errors_to=send_to,
    )


def import_json(job: Import) -> dict[str, Any]:
    total = max(job.rows_total, job.rows_done, 1)
    return {
        "id": job.pk,
        "status": job.status,
        "preview": job.preview,
        "file_name": job.file_name,
        "rows_total": job.rows_total,
        "rows_done": job.rows_done,
        "progress": 100 if job.status == "done" else min(99, job.rows_done * 100 // total),
        "created": job.created,
        "updated": job.updated,
        "skipped": job.skipped,
        "resubscribed": job.resubscribed,
        "error_count": job.error_count,
        "errors": job.errors,
        "failure": job.failure or None,
        "created_at": stamp(job.created_at, job.list.timezone),
        "finished_at": stamp(job.finished_at, job.list.timezone),
    }


class ImportView(ApiView):
    @extend_schema(
        operation_id="members_import",
        summary="Import a CSV file into a list (queued; poll imports/{id} for progress)",
        request={"multipart/form-data": JSON},
        responses={202: JSON, 400: JSON, 404: JSON},
    )
    def post(self, request: Request, list_id: str) -> Response:
        member_list = selectors.list_get(account=self.account(request), list_id=list_id)
        params = self.params(request)
        upload = params.files.get("file") or next(iter(params.files.values()), None)
        if upload is None:
            raise ParamError("attach the CSV file as the multipart part 'file'", field="file")
        job = import_create(
            member_list=member_list,
            upload=upload,
            options=_import_options(params),
            preview=to_bool(params.get("preview", "0"), field="preview"),
        )
        return Response({"id": job.pk, "import_id": job.pk, "status": job.status}, status=202)


class ImportDetailView(ApiView):
    @extend_schema(
        operation_id="members_import_status",
        summary="Import progress and outcome",
        responses={200: JSON, 404: JSON},
    )
    def get(self, request: Request, list_id: str, import_id: str) -> Response:
        member_list = selectors.list_get(account=self.account(request), list_id=list_id)
        return Response(
            import_json(selectors.import_get(member_list=member_list, import_id=import_id))
        )


class ImportReportView(ApiView):
    @extend_schema(
        operation_id="members_import_report",
        summary="The error report of an import, as CSV (row, error)",
        responses={(200, "text/csv"): OpenApiTypes.STR, 404: JSON},
    )
    def get(self, request: Request, list_id: str, import_id: str) -> StreamingHttpResponse:
        member_list = selectors.list_get(account=self.account(request), list_id=list_id)
        job = selectors.import_get(member_list=member_list, import_id=import_id)
        return csv_download(import_report_rows(job), f"import-{job.pk}-errors.csv")
