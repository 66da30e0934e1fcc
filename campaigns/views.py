"""The dashboard's campaigns: list, editor with live preview, test send, send or
schedule, progress while sending, and the report afterwards. Thin: selectors read,
services and the pipeline write, every campaign is found through the signed-in user's
account (others' ids 404). Times are shown and read in the account's time zone."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.access import customer_view
from accounts.models import Account, User
from campaigns import pipeline, selectors, services, stats
from campaigns.errors import CampaignError
from campaigns.forms import CampaignForm, DeliveryFilterForm, SendForm, TestSendForm
from campaigns.models import ACTIVE_STATES, Campaign, CampaignKind, CampaignStatus, DeliveryStatus
from campaigns.models_autoresponders import AutoresponderStep
from campaigns.selectors import Targets
from campaigns.serializers import counter_progress
from campaigns.stats_chart import campaign_charts
from campaigns.templating import TemplateError, template_check

PAGE_SIZE = 50
# A finished campaign can be sent again to these.
UNDELIVERED = (DeliveryStatus.FAILED, DeliveryStatus.CANCELLED, DeliveryStatus.QUEUED)


def _user(request: HttpRequest) -> User | None:
    return request.user if isinstance(request.user, User) else None


def _in_account_time(account: Account, request: HttpRequest, *args: Any, **kw: Any) -> HttpResponse:
    with timezone.override(account.timezone):
        return render(request, *args, **kw)


class _AutoresponderMail(Exception):
    """``_campaign`` found a mail of an autoresponder: see ``_not_for_autoresponders``."""

    def __init__(self, campaign: Campaign) -> None:
        super().__init__(campaign.pk)
        self.campaign = campaign


def _campaign(account: Account, campaign_id: int) -> Campaign:
    campaign = selectors.campaign_get(account=account, campaign_id=campaign_id)
    if campaign.kind == CampaignKind.AUTORESPONDER:
        raise _AutoresponderMail(campaign)
    return campaign


View = Callable[..., HttpResponse]


def _not_for_autoresponders(*, editor: bool = False) -> Callable[[View], View]:
    """A page of one campaign. An autoresponder's mail is a Campaign too (kind
    ``autoresponder``), but these pages would treat one step of a sequence as a one-off
    send (report, send, copy, delete): its URLs lead to its autoresponder instead, or to
    the mail's own editor (``editor``), and nothing is done to it."""

    def decorate(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                return view(request, *args, **kwargs)
            except _AutoresponderMail as found:
                return _to_autoresponder(found.campaign, editor=editor)

        return wrapper

    return decorate


def _to_autoresponder(campaign: Campaign, *, editor: bool) -> HttpResponse:
    step = AutoresponderStep.objects.filter(campaign=campaign).first()
    if step is None:  # a mail whose step is gone: nothing of it to show
        return redirect("campaigns:autoresponders")
    if editor:
        return redirect(
            "campaigns:autoresponder_step_edit",
            autoresponder_id=step.autoresponder_id,
            step_id=step.pk,
        )
    return redirect("campaigns:autoresponder_detail", autoresponder_id=step.autoresponder_id)


@customer_view()
def campaigns(request: HttpRequest, account: Account) -> HttpResponse:
    found = selectors.campaigns_for_account(account=account)
    page = Paginator(found, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = [(c, counter_progress(c)) for c in page.object_list]
    return _in_account_time(
        account, request, "campaigns/campaigns.html", {"page": page, "rows": rows}
    )


# -- the editor --------------------------------------------------------------------------


def _form_initial(account: Account, campaign: Campaign | None) -> dict[str, Any]:
    if campaign is None:
        return {
            "from_name": account.default_from_name,
            "from_email": account.default_from_email,
            "tracking": True,
        }
    targets = selectors.campaign_targets(campaign=campaign)
    return {
        **{field: getattr(campaign, field) for field in services.TEXT_FIELDS},
        "tracking": campaign.tracking,
        **{field: list(getattr(targets, field)) for field in services.TARGET_FIELDS},
    }


def _after_save(request: HttpRequest, campaign: Campaign) -> HttpResponse:
    if request.POST.get("next") == "send":
        return redirect("campaigns:send", campaign_id=campaign.pk)
    messages.success(request, _("The campaign %(name)s was saved.") % {"name": campaign.name})
    return redirect("campaigns:edit", campaign_id=campaign.pk)


def _editor(
    request: HttpRequest, account: Account, form: CampaignForm, campaign: Campaign | None
) -> HttpResponse:
    preview_html, preview_subject, problems, members, recipients = "", "", {}, [], None
    if campaign is not None:
        problems = services.campaign_problems(campaign=campaign)
        members = selectors.preview_members(campaign=campaign)
        recipients = selectors.campaign_recipients_count(campaign=campaign)
        try:
            rendered = selectors.campaign_preview(campaign=campaign, member=None)
            preview_html, preview_subject = rendered.html, rendered.subject
        except TemplateError:
            pass  # the problems say why; the preview stays empty
    return _in_account_time(
        account,
        request,
        "campaigns/editor.html",
        {
            "form": form,
            "campaign": campaign,
            "problems": problems,
            "preview_html": preview_html,
            "preview_subject": preview_subject,
            "preview_members": members,
            "recipients": recipients,
            "domains": sorted(selectors.verified_domains(account=account)),
            "test_form": TestSendForm(),
        },
    )


@customer_view()
def campaign_create(request: HttpRequest, account: Account) -> HttpResponse:
    form = CampaignForm(request.POST or None, account=account, initial=_form_initial(account, None))
    if request.method == "POST" and form.is_valid():
        try:
            campaign = services.campaign_create(
                account=account, user=_user(request), **form.changes()
            )
        except CampaignError as error:
            form.add_problems(error.errors)
        else:
            return _after_save(request, campaign)
    return _editor(request, account, form, None)


@customer_view()
@_not_for_autoresponders(editor=True)
def campaign_edit(request: HttpRequest, account: Account, campaign_id: int) -> HttpResponse:
    campaign = _campaign(account, campaign_id)
    if campaign.status != CampaignStatus.DRAFT:
        if campaign.status == CampaignStatus.SCHEDULED:
            messages.info(request, _("The campaign is scheduled. Unschedule it to change it."))
        return redirect("campaigns:detail", campaign_id=campaign.pk)
    form = CampaignForm(
        request.POST or None,
        account=account,
        initial=_form_initial(account, campaign),
        resend=campaign.resend_of_id is not None,
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.campaign_update(campaign=campaign, **form.changes())
        except CampaignError as error:
            form.add_problems(error.errors)
        else:
            return _after_save(request, campaign)
    return _editor(request, account, form, campaign)


def _ids(request: HttpRequest, name: str) -> tuple[int, ...]:
    return tuple(int(v) for v in request.POST.getlist(name) if v.isdigit())


@customer_view()
def campaign_preview(request: HttpRequest, account: Account) -> JsonResponse:
    """The editor's live preview: the message as typed (not saved), rendered as the
    chosen member or with the fallbacks; template problems keyed by field. Lists and
    segments that are not the account's are ignored; a member who is not is a 404."""
    data = request.POST if request.method == "POST" else request.GET
    campaign = None
    if data.get("campaign_id", "").isdigit():
        # The editor of an autoresponder's mail previews through here too.
        campaign = selectors.campaign_get(account=account, campaign_id=int(data["campaign_id"]))
    if campaign is not None and campaign.resend_of_id is not None:
        targets = selectors.campaign_targets(campaign=campaign)
    else:
        targets = Targets(
            list_ids=_ids(request, "list_ids"), segment_ids=_ids(request, "segment_ids")
        )
    member = None
    if data.get("member_id"):
        member = selectors.account_member_get(account=account, member_id=data["member_id"])
    parts = {part: data.get(part, "") for part in ("subject", "preheader", "html", "text")}
    merge = selectors.merge_fields_for(account=account, targets=targets)
    errors = template_check(**parts, field_names=merge.names)
    if errors:
        return JsonResponse({"errors": errors})
    rendered = selectors.preview_render(
        account=account,
        targets=targets,
        subject=parts["subject"],
        preheader=parts["preheader"],
        html=parts["html"],
        text=parts["text"],
        tracking=data.get("tracking") in ("on", "1", "true"),
        member=member,
    )
    return JsonResponse(
        {"errors": {}, "subject": rendered.subject, "html": rendered.html, "text": rendered.text}
    )


@customer_view()
@_not_for_autoresponders(editor=True)
@require_POST
def campaign_test(request: HttpRequest, account: Account, campaign_id: int) -> HttpResponse:
    campaign = _campaign(account, campaign_id)
    form = TestSendForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, str(error))
        return redirect("campaigns:edit", campaign_id=campaign.pk)
    member = None
    if form.cleaned_data["member_id"]:
        member = selectors.account_member_get(
            account=account, member_id=form.cleaned_data["member_id"]
        )
    try:
        pipeline.campaign_send_test(
            campaign=campaign, emails=form.cleaned_data["emails"], member=member
        )
    except CampaignError as error:
        messages.error(
            request,
            _("The test was not sent: %(reason)s") % {"reason": "; ".join(error.errors.values())},
        )
    else:
        messages.success(
            request,
            _("A test was sent to %(emails)s.")
            % {"emails": ", ".join(form.cleaned_data["emails"])},
        )
    return redirect("campaigns:edit", campaign_id=campaign.pk)


# -- sending -----------------------------------------------------------------------------


@customer_view()
@_not_for_autoresponders()
def campaign_send(request: HttpRequest, account: Account, campaign_id: int) -> HttpResponse:
    """The send dialog: the recipient count to confirm, now or at a time."""
    campaign = _campaign(account, campaign_id)
    if campaign.status != CampaignStatus.DRAFT:
        return redirect("campaigns:detail", campaign_id=campaign.pk)
    with timezone.override(account.timezone):
        form = SendForm(request.POST or None)
        valid = request.method == "POST" and form.is_valid()
    if valid:
        try:
            campaign = pipeline.campaign_start(
                campaign=campaign, at=form.cleaned_data["scheduled_at"], user=_user(request)
            )
        except CampaignError as error:
            for field, message in error.errors.items():
                form.add_error("scheduled_at" if field == "scheduled_at" else None, message)
        else:
            if campaign.status == CampaignStatus.SCHEDULED:
                messages.success(request, _("The campaign is scheduled."))
            else:
                messages.success(request, _("The campaign is being sent."))
            return redirect("campaigns:detail", campaign_id=campaign.pk)
    return _in_account_time(
        account,
        request,
        "campaigns/send.html",
        {
            "campaign": campaign,
            "form": form,
            "problems": services.campaign_problems(campaign=campaign),
            "recipients": selectors.campaign_recipients_count(campaign=campaign),
            "account": account,
        },
    )


def _control(request: HttpRequest, campaign: Campaign, action: Any, done: str) -> HttpResponse:
    try:
        action(campaign=campaign)
    except CampaignError as error:
        messages.error(request, "; ".join(error.errors.values()))
    else:
        messages.success(request, done)
    return redirect("campaigns:detail", campaign_id=campaign.pk)


@customer_view()
@_not_for_autoresponders()
@require_POST
def campaign_pause(request: HttpRequest, account: Account, campaign_id: int) -> HttpResponse:
    campaign = _campaign(account, campaign_id)
    return _control(request, campaign, pipeline.campaign_pause, _("The send is paused."))


@customer_view()
@_not_for_autoresponders()
@require_POST
def campaign_resume(request: HttpRequest, account: Account, campaign_id: int) -> HttpResponse:
    campaign = _campaign(account, campaign_id)
    return _control(request, campaign, pipeline.campaign_resume, _("The send goes on."))


@customer_view()
@_not_for_autoresponders()
@require_POST
def campaign_cancel(request: HttpRequest, account: Account, campaign_id: int) -> HttpResponse:
    campaign = _campaign(account, campaign_id)
    return _control(request, campaign, pipeline.campaign_cancel, _("The campaign is cancelled."))


@customer_view()
@_not_for_autoresponders()
@require_POST
def campaign_unschedule(request: HttpRequest, account: Account, campaign_id: int) -> HttpResponse:
    campaign = _campaign(account, campaign_id)
    try:
        pipeline.campaign_unschedule(campaign=campaign)
    except CampaignError as error:
        messages.error(request, "; ".join(error.errors.values()))
        return redirect("campaigns:detail", campaign_id=campaign.pk)
    messages.success(request, _("The campaign is a draft again; nothing was sent."))
    return redirect("campaigns:edit", campaign_id=campaign.pk)


@customer_view()
@_not_for_autoresponders()
def campaign_status(request: HttpRequest, account: Account, campaign_id: int) -> JsonResponse:
    """What the progress bar polls."""
    campaign = _campaign(account, campaign_id)
    progress = pipeline.campaign_progress(campaign=campaign)
    return JsonResponse(
        {
            "status": campaign.status,
            "status_display": campaign.get_status_display(),
            "status_reason": campaign.status_reason,
            "recipients": progress.recipients,
            "sent": progress.sent,
            "failed": progress.failed,
            "waiting": progress.waiting,
            "percent": progress.percent,
        }
    )


# -- after sending -----------------------------------------------------------------------


@customer_view()
@_not_for_autoresponders()
def campaign_detail(request: HttpRequest, account: Account, campaign_id: int) -> HttpResponse:
    """Progress while sending; afterwards the report: counts and the deliveries."""
    campaign = _campaign(account, campaign_id)
    if campaign.status == CampaignStatus.DRAFT:
        return redirect("campaigns:edit", campaign_id=campaign.pk)
    form = DeliveryFilterForm(request.GET or None)
    status = form.cleaned_data["status"] if form.is_valid() else ""
    page = request.GET.get("page", "1")
    counts = selectors.delivery_counts(campaign=campaign)
    deliveries = selectors.deliveries_for_campaign(
        campaign=campaign,
        status=status or None,
        page=int(page) if page.isdigit() else 1,
        perpage=PAGE_SIZE,
        counts=counts,
    )
    query = request.GET.copy()
    query.pop("page", None)
    return _in_account_time(
        account,
        request,
        "campaigns/detail.html",
        {
            "campaign": campaign,
            "progress": pipeline.campaign_progress(campaign=campaign),
            "counts": counts,
            "undelivered": sum(counts[s] for s in UNDELIVERED),
            "statistics": selectors.campaign_statistics(campaign=campaign),
            "links": stats.campaign_links(campaign=campaign),
            "charts": campaign_charts(campaign=campaign),
            "targets": selectors.campaign_target_rows(campaign=campaign),
            "deliveries": deliveries,
            "form": form,
            "query": query.urlencode(),
            "live": campaign.status in (*ACTIVE_STATES, CampaignStatus.SCHEDULED),
            "finished": campaign.status in (CampaignStatus.SENT, CampaignStatus.CANCELLED),
        },
    )


@customer_view()
@_not_for_autoresponders()
@require_POST
def campaign_resend(request: HttpRequest, account: Account, campaign_id: int) -> HttpResponse:
    """A new draft to those of this campaign who did not receive it, to check and send."""
    campaign = _campaign(account, campaign_id)
    try:
        copy = pipeline.campaign_resend(campaign=campaign, user=_user(request))
    except CampaignError as error:
        messages.error(request, "; ".join(error.errors.values()))
        return redirect("campaigns:detail", campaign_id=campaign.pk)
    messages.success(
        request,
        _("A copy for those who did not receive it is ready. Check it, then send it."),
    )
    return redirect("campaigns:edit", campaign_id=copy.pk)


@customer_view()
@_not_for_autoresponders()
@require_POST
def campaign_duplicate(request: HttpRequest, account: Account, campaign_id: int) -> HttpResponse:
    campaign = _campaign(account, campaign_id)
    copy = services.campaign_duplicate(campaign=campaign, user=_user(request))
    messages.success(request, _("The campaign was copied."))
    return redirect("campaigns:edit", campaign_id=copy.pk)


@customer_view()
@_not_for_autoresponders()
@require_POST
def campaign_delete(request: HttpRequest, account: Account, campaign_id: int) -> HttpResponse:
    campaign = _campaign(account, campaign_id)
    try:
        services.campaign_delete(campaign=campaign)
    except CampaignError as error:
        messages.error(request, "; ".join(error.errors.values()))
        return redirect("campaigns:detail", campaign_id=campaign.pk)
    except Http404:
        pass  # deleted meanwhile: the same outcome
    messages.success(request, _("The campaign %(name)s was deleted.") % {"name": campaign.name})
    return redirect("campaigns:list")
