"""The dashboard's lists, members, imports and exports. Thin: selectors read, services
write, every object is found through the signed-in user's account (others' ids 404)."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.access import customer_view
from accounts.models import Account, User
from audit.services import record
from campaigns.stats import GrowthDay, member_timeline
from campaigns.stats import list_growth as growth_of
from campaigns.stats_chart import growth_charts
from members import selectors, services, webhook_delivery, webhooks
from members.api import import_json
from members.exports import csv_download
from members.fields import FIXED_NAMES, FieldSpec
from members.forms import (
    GROWTH_DAYS,
    CustomFieldForm,
    GrowthForm,
    ImportForm,
    ListForm,
    MemberSearchForm,
)
from members.imports import ImportOptions, import_create, import_report_rows
from members.models import Duplicates, Import, List, Member, Webhook, WebhookDeliveryStatus
from members.schema import ListSchema
from members.serializers import member_json
from members.services import MemberError

PAGE_SIZE = 50


@customer_view()
def lists(request: HttpRequest, account: Account) -> HttpResponse:
    return render(
        request, "members/lists.html", {"lists": selectors.lists_for_account(account=account)}
    )


@customer_view()
def list_create(request: HttpRequest, account: Account) -> HttpResponse:
    form = ListForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            member_list = services.list_create(
                account=account,
                name=form.cleaned_data["name"],
                duplicates=Duplicates(form.cleaned_data["duplicates"]),
                double_optin=form.cleaned_data["double_optin"],
            )
        except MemberError as error:
            form.add_error(None, error.message)
        else:
            messages.success(
                request, _("The list %(name)s was created.") % {"name": member_list.name}
            )
            return redirect("members:list_detail", list_id=member_list.pk)
    return render(request, "members/list_form.html", {"form": form})


def _search(member_list: List, form: MemberSearchForm) -> QuerySet[Member]:
    members = Member.objects.filter(list=member_list, obscured_at__isnull=True)
    if form.is_valid():
        if q := form.cleaned_data["q"].strip():
            members = members.filter(
                Q(email__icontains=q)
                | Q(mobile__icontains=q)
                | Q(data__firstname__icontains=q)
                | Q(data__lastname__icontains=q)
            )
        if status := form.cleaned_data["status"]:
            members = members.filter(status=status)
    return members.order_by("-created_at", "pk")


@customer_view()
def list_detail(request: HttpRequest, account: Account, list_id: int) -> HttpResponse:
    member_list = selectors.list_get(account=account, list_id=list_id)
    form = MemberSearchForm(request.GET or None)
    page = Paginator(_search(member_list, form), PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "members/list_detail.html",
        {
            "list": member_list,
            "form": form,
            "page": page,
            "query": query.urlencode(),
            "total": member_list.members.filter(obscured_at__isnull=True).count(),
            "imports": member_list.imports.filter(preview=False)[:5],
        },
    )


@customer_view()
def list_fields(request: HttpRequest, account: Account, list_id: int) -> HttpResponse:
    member_list = selectors.list_get(account=account, list_id=list_id)
    form = CustomFieldForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        from django.utils.text import slugify

        spec = FieldSpec(
            name=slugify(data["label"]).replace("-", "_")[:64],
            format=data["format"],
            label=data["label"],
            required=data["required"],
            options=data["options"],
        )
        if spec.name in FIXED_NAMES or member_list.fields.filter(name=spec.name).exists():
            form.add_error("label", _("The list already has a field with this name."))
        elif not spec.name:
            form.add_error("label", _("Use letters or digits in the label."))
        else:
            try:
                services.list_set_fields(member_list=member_list, fields=[spec], replace=False)
            except MemberError as error:
                form.add_error(None, error.message)
            else:
                messages.success(
                    request, _("The field %(label)s was added.") % {"label": spec.label}
                )
                return redirect("members:list_fields", list_id=member_list.pk)
    schema = ListSchema.load(member_list)
    return render(
        request,
        "members/list_fields.html",
        {
            "list": member_list,
            "schema": schema,
            "form": form,
            "fields": [(f, schema.options.get(n, {})) for n, f in schema.fields.items()],
        },
    )


@customer_view()
def list_growth(request: HttpRequest, account: Account, list_id: int) -> HttpResponse:
    """Members added and unsubscribed per day, and the list's size, as charts and numbers
    (campaigns.stats.list_growth: a GROUP BY per table, whatever the list's size)."""
    member_list = selectors.list_get(account=account, list_id=list_id)
    form = GrowthForm(request.GET or None)
    days = (form.cleaned_data["days"] if form.is_valid() else None) or GROWTH_DAYS
    with timezone.override(account.timezone):
        growth = _since_list_began(member_list, growth_of(member_list=member_list, days=days))
        return render(
            request,
            "members/list_growth.html",
            {
                "list": member_list,
                "form": form,
                "growth": growth,
                "charts": growth_charts(growth=growth),
                "empty": not any(g.size or g.unsubscribed for g in growth),
                "size": growth[-1].size,
                "subscribed": sum(g.subscribed for g in growth),
                "unsubscribed": sum(g.unsubscribed for g in growth),
            },
        )


def _since_list_began(member_list: List, growth: list[GrowthDay]) -> list[GrowthDay]:
    """The days from the list's first (its creation, or an earlier member's) on: a list
    made last week draws a week, not ninety empty days."""
    began = timezone.localtime(member_list.created_at).date()
    first = next(
        (i for i, g in enumerate(growth) if g.day >= began or g.size or g.unsubscribed),
        len(growth) - 1,
    )
    return growth[first:]


@customer_view()
def member_detail(
    request: HttpRequest, account: Account, list_id: int, member_id: str
) -> HttpResponse:
    member_list = selectors.list_get(account=account, list_id=list_id)
    member = selectors.member_get(member_list=member_list, member_id=member_id)
    schema = ListSchema.load(member_list)
    shown = member_json(member, schema)
    values = [
        (field.label, _display(shown.get(name)))
        for name, field in schema.fields.items()
        if name != "password"
    ]
    history = [
        (
            member.created_at,
            _("Added (%(source)s)") % {"source": member.consent_source or _("unknown source")},
        )
    ]
    if member.consent_at and member.consent_ip:
        history.append(
            (member.consent_at, _("Consent given from %(ip)s") % {"ip": member.consent_ip})
        )
    if member.updated_at and member.updated_at != member.created_at:
        history.append((member.updated_at, _("Last changed")))
    # Mails received, opened and clicked, bounces and unsubscribes (campaigns/stats.py).
    history += [(entry.at, entry.text) for entry in member_timeline(member=member)]
    return render(
        request,
        "members/member_detail.html",
        {
            "list": member_list,
            "member": member,
            "values": values,
            "history": sorted(history, key=lambda item: item[0], reverse=True),
        },
    )


def _display(value: Any) -> str:
    if value in (None, "", [], "0000-00-00"):
        return "—"
    if isinstance(value, dict):
        return str(value.get("label") or value.get("id"))
    if isinstance(value, list):
        return ", ".join(str(v.get("label") or v.get("id")) for v in value)
    return str(value)


@customer_view()
@require_POST
def member_remove(
    request: HttpRequest, account: Account, list_id: int, member_id: str
) -> HttpResponse:
    member_list = selectors.list_get(account=account, list_id=list_id)
    member = selectors.member_get(member_list=member_list, member_id=member_id)
    if request.POST.get("obscure"):
        services.member_obscure(member=member)
        messages.success(request, _("The member's personal data was erased."))
    else:
        services.member_delete(member=member)
        messages.success(request, _("The member was deleted."))
    return redirect("members:list_detail", list_id=member_list.pk)


@customer_view()
def member_export(
    request: HttpRequest, account: Account, list_id: int, member_id: str
) -> HttpResponse:
    """Everything held on one member (GDPR access request), as JSON."""
    member_list = selectors.list_get(account=account, list_id=list_id)
    member = selectors.member_get(member_list=member_list, member_id=member_id)
    record("export.members", account=account, target=member, request=request, extra={"count": 1})
    body = {
        "list": {"id": member_list.pk, "name": member_list.name},
        "member": member_json(member, ListSchema.load(member_list)),
        "consent": {
            "source": member.consent_source,
            "ip": member.consent_ip,
            "time": member.consent_at.isoformat() if member.consent_at else None,
            "wording": member.consent_text,
        },
    }
    response = HttpResponse(
        json.dumps(body, indent=2, ensure_ascii=False),
        content_type="application/json; charset=utf-8",
    )
    response["Content-Disposition"] = f'attachment; filename="member-{member.pk}.json"'
    return response


@customer_view()
def list_export(request: HttpRequest, account: Account, list_id: int) -> StreamingHttpResponse:
    member_list = selectors.list_get(account=account, list_id=list_id)
    members = Member.objects.filter(list=member_list, obscured_at__isnull=True)
    record("export.members", account=account, target=member_list, request=request)
    return _members_csv(member_list, members, f"{member_list.name}.csv")


@customer_view()
def segment_export(
    request: HttpRequest, account: Account, list_id: int, segment_id: int
) -> StreamingHttpResponse:
    member_list = selectors.list_get(account=account, list_id=list_id)
    segment = selectors.segment_get(member_list=member_list, segment_id=segment_id)
    members = selectors.segment_members(segment=segment)
    record("export.members", account=account, target=segment, request=request)
    return _members_csv(member_list, members, f"{member_list.name} - {segment.name}.csv")


def _members_csv(
    member_list: List, members: QuerySet[Member], filename: str
) -> StreamingHttpResponse:
    """Members as CSV, one column per field, streamed in chunks."""
    schema = ListSchema.load(member_list)
    names = [n for n in schema.fields if n != "password"]

    def rows() -> Any:
        yield ["id", "status", *names, "created_at"]
        for member in members.order_by("pk").iterator(chunk_size=2000):
            shown = member_json(member, schema)
            yield [
                member.pk,
                member.status,
                *(_display(shown.get(n)).replace("—", "") for n in names),
                shown["created_at"],
            ]

    return csv_download(rows(), filename)


@customer_view()
def import_start(request: HttpRequest, account: Account, list_id: int) -> HttpResponse:
    member_list = selectors.list_get(account=account, list_id=list_id)
    form = ImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        options = ImportOptions(
            handle_existing=data["handle_existing"],
            resubscribe=data["resubscribe"],
            send_errors_to=data["send_errors_to"] or "",
        )
        try:
            job = import_create(
                member_list=member_list,
                upload=data["file"],
                options=options,
                created_by=request.user if isinstance(request.user, User) else None,
                preview=True,
            )
        except MemberError as error:
            form.add_error("file", error.message)
        else:
            return redirect("members:import_detail", list_id=member_list.pk, import_id=job.pk)
    return render(request, "members/import_start.html", {"list": member_list, "form": form})


def _import(account: Account, list_id: int, import_id: int) -> Import:
    member_list = selectors.list_get(account=account, list_id=list_id)
    return selectors.import_get(member_list=member_list, import_id=import_id)


@customer_view()
def import_detail(
    request: HttpRequest, account: Account, list_id: int, import_id: int
) -> HttpResponse:
    job = _import(account, list_id, import_id)
    return render(
        request,
        "members/import_detail.html",
        {"list": job.list, "job": job, "status": import_json(job)},
    )


@customer_view()
def import_status(
    request: HttpRequest, account: Account, list_id: int, import_id: int
) -> JsonResponse:
    return JsonResponse(import_json(_import(account, list_id, import_id)))


@customer_view()
@require_POST
def import_commit(
    request: HttpRequest, account: Account, list_id: int, import_id: int
) -> HttpResponse:
    """Run for real the import a preview was made of, from the same file."""
    preview = _import(account, list_id, import_id)
    if not preview.preview or preview.status != "done":
        return redirect("members:import_detail", list_id=list_id, import_id=import_id)
    with open(preview.file, "rb") as handle:
        job = import_create(
            member_list=preview.list,
            upload=handle,
            options=ImportOptions(**preview.options),
            created_by=request.user if isinstance(request.user, User) else None,
        )
    job.file_name = preview.file_name
    job.save(update_fields=["file_name"])
    return redirect("members:import_detail", list_id=list_id, import_id=job.pk)


@customer_view()
def import_report(
    request: HttpRequest, account: Account, list_id: int, import_id: int
) -> StreamingHttpResponse:
    job = _import(account, list_id, import_id)
    return csv_download(import_report_rows(job), f"import-{job.pk}-errors.csv")


def optin_confirm(request: HttpRequest, token: str) -> HttpResponse:
    """The public page a confirmation link opens. No sign-in: the token is the proof."""
    from members.optin import optin_confirm as confirm

    member = confirm(token=token)
    return render(
        request, "members/optin_done.html", {"member": member}, status=200 if member else 404
    )


# -- segments ---------------------------------------------------------------------------

OPERATORS = {
    "text": ["eq", "neq", "ct", "nct", "sw", "ew", "ie", "nie"],
    "number": ["eq", "neq", "gt", "gte", "lt", "lte", "ie", "nie"],
    "date": ["eq", "gt", "gte", "lt", "lte", "ie", "nie"],
    "boolean": ["eq"],
    "choice": ["in", "nin", "ie", "nie"],
    "shop": ["in", "nin", "ie", "nie"],
    "multi": ["in", "nin", "ina", "ie", "nie"],
    "status": ["in", "nin"],
}


def _builder_config(schema: ListSchema) -> dict[str, Any]:
    """What the segment builder needs to draw its menus (fields, operators, options)."""
    from members.models import MemberStatus

    fields = [
        {
            "name": name,
            "label": str(field.label),
            "format": field.format,
            "options": [
                {"value": str(v), "label": label}
                for v, label in schema.options.get(name, {}).items()
            ],
        }
        for name, field in schema.fields.items()
        if field.format != "password"
    ]
    fields.append(
        {
            "name": "status.status",
            "label": str(_("Status")),
            "format": "status",
            "options": [{"value": s.value, "label": str(s.label)} for s in MemberStatus],
        }
    )
    labels = {
        "eq": _("is"),
        "neq": _("is not"),
        "ct": _("contains"),
        "nct": _("does not contain"),
        "sw": _("starts with"),
        "ew": _("ends with"),
        "gt": _("is greater than"),
        "gte": _("is at least"),
        "lt": _("is less than"),
        "lte": _("is at most"),
        "in": _("is one of"),
        "nin": _("is none of"),
        "ina": _("has all of"),
        "ie": _("is empty"),
        "nie": _("is not empty"),
    }
    return {
        "fields": fields,
        "operators": OPERATORS,
        "labels": {k: str(v) for k, v in labels.items()},
        "text": {
            "and": str(_("all of these")),
            "or": str(_("any of these")),
            "add_condition": str(_("Add condition")),
            "add_group": str(_("Add group")),
            "remove": str(_("Remove")),
            "match": str(_("Members who match")),
            "value": str(_("Value")),
            "field": str(_("Field")),
            "operator": str(_("Condition")),
        },
    }


@customer_view()
def segments(request: HttpRequest, account: Account, list_id: int) -> HttpResponse:
    member_list = selectors.list_get(account=account, list_id=list_id)
    found = list(selectors.segments_for_list(member_list=member_list))
    counts = selectors.segment_counts(member_list=member_list, segments=found)
    schema = ListSchema.load(member_list)
    rows = [
        (s, counts.get(s.pk, 0), selectors.segment_problem(segment=s, schema=schema)) for s in found
    ]
    return render(request, "members/segments.html", {"list": member_list, "rows": rows})


@customer_view()
def segment_edit(
    request: HttpRequest, account: Account, list_id: int, segment_id: int | None = None
) -> HttpResponse:
    from members import segments as segment_services

    member_list = selectors.list_get(account=account, list_id=list_id)
    segment = (
        selectors.segment_get(member_list=member_list, segment_id=segment_id)
        if segment_id
        else None
    )
    name = request.POST.get("name", segment.name if segment else "")
    rules = request.POST.get("rules") or json.dumps(
        segment.rules if segment else {"logic": "and", "rules": []}
    )
    error = None
    if request.method == "POST":
        try:
            tree = selectors.rules_from_json(json.loads(rules))
            if segment:
                segment_services.segment_update(segment=segment, name=name, rules=tree)
            else:
                segment = segment_services.segment_create(
                    member_list=member_list, name=name, rules=tree
                )
        except (MemberError, ValueError) as problem:
            error = getattr(problem, "message", None) or str(problem)
        else:
            messages.success(request, _("The segment %(name)s was saved.") % {"name": segment.name})
            return redirect("members:segments", list_id=member_list.pk)
    return render(
        request,
        "members/segment_edit.html",
        {
            "list": member_list,
            "segment": segment,
            "name": name,
            "rules": rules,
            "error": error,
            "config": _builder_config(ListSchema.load(member_list)),
        },
    )


@customer_view()
@require_POST
def segment_count(request: HttpRequest, account: Account, list_id: int) -> JsonResponse:
    """The live count of the builder: how many members the rules select right now."""
    member_list = selectors.list_get(account=account, list_id=list_id)
    try:
        data = json.loads(request.body or b"{}")
        members = Member.objects.filter(list=member_list, obscured_at__isnull=True)
        if isinstance(data, dict) and data.get("rules"):  # no condition yet: the whole list
            tree = selectors.rules_from_json(data)
            members = members.filter(
                selectors.rules_q(ListSchema.load(member_list), tree, param="rules")
            )
        return JsonResponse({"count": members.count()})
    except (MemberError, ValueError) as problem:
        return JsonResponse(
            {"error": getattr(problem, "message", None) or str(problem)}, status=400
        )


@customer_view()
@require_POST
def segment_delete(
    request: HttpRequest, account: Account, list_id: int, segment_id: int
) -> HttpResponse:
    from members import segments as segment_services

    member_list = selectors.list_get(account=account, list_id=list_id)
    segment = selectors.segment_get(member_list=member_list, segment_id=segment_id)
    segment_services.segment_delete(segment=segment)
    messages.success(request, _("The segment %(name)s was deleted.") % {"name": segment.name})
    return redirect("members:segments", list_id=member_list.pk)


# -- webhooks ---------------------------------------------------------------------------

RECENT_DELIVERIES = 10


def _webhook(account: Account, list_id: int, webhook_id: int) -> Webhook:
    member_list = selectors.list_get(account=account, list_id=list_id)
    return selectors.webhook_get(member_list=member_list, webhook_id=webhook_id)


@customer_view()
def webhooks_page(request: HttpRequest, account: Account, list_id: int) -> HttpResponse:
    """The list's webhooks, each with its newest deliveries."""
    member_list = selectors.list_get(account=account, list_id=list_id)
    found = list(selectors.webhooks_for_list(member_list=member_list))
    recent = webhook_delivery.webhooks_recent_deliveries(
        webhooks=found, per_webhook=RECENT_DELIVERIES
    )
    return render(
        request,
        "members/webhooks.html",
        {"list": member_list, "rows": [(w, recent[w.pk]) for w in found]},
    )


@customer_view()
def webhook_detail(
    request: HttpRequest, account: Account, list_id: int, webhook_id: int
) -> HttpResponse:
    """One webhook's whole log, newest first, paged, by status if asked."""
    webhook = _webhook(account, list_id, webhook_id)
    status = request.GET.get("status", "")
    if status not in WebhookDeliveryStatus.values:
        status = ""
    log = webhook_delivery.webhook_deliveries(webhook=webhook, status=status or None)
    page = Paginator(log, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "members/webhooks_detail.html",
        {
            "list": webhook.list,
            "webhook": webhook,
            "page": page,
            "status": status,
            "statuses": WebhookDeliveryStatus.choices,
        },
    )


@customer_view()
@require_POST
def webhook_replay(
    request: HttpRequest, account: Account, list_id: int, webhook_id: int, delivery_id: int
) -> HttpResponse:
    webhook = _webhook(account, list_id, webhook_id)
    delivery = webhook_delivery.webhook_delivery_get(webhook=webhook, delivery_id=delivery_id)
    try:
        copy = webhooks.webhook_delivery_replay(delivery=delivery)
    except MemberError as error:
        messages.error(request, error.message)
    else:
        messages.success(
            request,
            _("Delivery %(old)s will be sent again as delivery %(new)s.")
            % {"old": delivery.pk, "new": copy.pk},
        )
    return redirect("members:webhook_detail", list_id=webhook.list_id, webhook_id=webhook.pk)


@customer_view()
@require_POST
def webhook_enable(
    request: HttpRequest, account: Account, list_id: int, webhook_id: int
) -> HttpResponse:
    """Switch a webhook on again; what waited for it is sent, in order."""
    webhook = _webhook(account, list_id, webhook_id)
    webhooks.webhook_update(webhook=webhook, active=True)
    messages.success(request, _("The webhook is on again; waiting events are being sent."))
    return redirect("members:webhook_detail", list_id=webhook.list_id, webhook_id=webhook.pk)
