"""The dashboard's autoresponders: the list, a new one, its overview with the sequence and
the statistics of each mail, its settings, switching it on and off, and the editor of a
mail (the campaign editor's, with its live preview). Thin: selectors read, the services
of campaigns/autoresponders.py write, every object is found through the signed-in user's
account (others' ids 404)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.access import customer_view
from accounts.models import Account, User
from campaigns import autoresponder_selectors as selectors
from campaigns import autoresponders as services
from campaigns import pipeline
from campaigns import selectors as campaign_selectors
from campaigns.autoresponder_forms import AutoresponderCreateForm, AutoresponderForm, StepForm
from campaigns.errors import CampaignError
from campaigns.forms import TestSendForm
from campaigns.models_autoresponders import Autoresponder, AutoresponderStep
from campaigns.services import TEXT_FIELDS, campaign_problems
from campaigns.templating import TemplateError


def _user(request: HttpRequest) -> User | None:
    return request.user if isinstance(request.user, User) else None


def _page(
    account: Account, request: HttpRequest, template: str, context: dict[str, Any]
) -> HttpResponse:
    with timezone.override(account.timezone):
        return render(request, template, context)


def _autoresponder(account: Account, autoresponder_id: int) -> Autoresponder:
    return selectors.autoresponder_get(account=account, autoresponder_id=autoresponder_id)


def _step(account: Account, autoresponder_id: int, step_id: int) -> AutoresponderStep:
    ar = _autoresponder(account, autoresponder_id)
    step = selectors.autoresponder_step_get(autoresponder=ar, step_id=step_id)
    step.autoresponder = ar
    return step


def _errors(request: HttpRequest, error: CampaignError) -> None:
    for message in error.errors.values():
        messages.error(request, message)


# -- the list and a new one ----------------------------------------------------------------


@customer_view()
def autoresponders(request: HttpRequest, account: Account) -> HttpResponse:
    found = list(selectors.autoresponders_for_account(account=account))
    rows = [(ar, selectors.trigger_summary(autoresponder=ar)) for ar in found]
    return _page(account, request, "campaigns/autoresponders.html", {"rows": rows})


@customer_view()
def autoresponder_create(request: HttpRequest, account: Account) -> HttpResponse:
    form = AutoresponderCreateForm(request.POST or None, account=account)
    if request.method == "POST" and form.is_valid():
        try:
            ar = services.autoresponder_create(
                account=account,
                member_list=form.cleaned_data["list"],
                name=form.cleaned_data["name"],
                trigger=form.cleaned_data["trigger"],
                user=_user(request),
            )
        except CampaignError as error:
            for field, message in error.errors.items():
                form.add_error(field if field in form.fields else None, message)
        else:
            messages.success(request, _("Now set up the trigger and write the first mail."))
            return redirect("campaigns:autoresponder_edit", autoresponder_id=ar.pk)
    return _page(account, request, "campaigns/autoresponder_new.html", {"form": form})


# -- one autoresponder ---------------------------------------------------------------------


@customer_view()
def autoresponder_detail(
    request: HttpRequest, account: Account, autoresponder_id: int
) -> HttpResponse:
    """The overview: trigger, the mails in order with their statistics, on or off."""
    ar = _autoresponder(account, autoresponder_id)
    statistics = selectors.autoresponder_statistics(autoresponder=ar)
    totals = {name: sum(s.counts.get(name, 0) for s in statistics) for name in ("sent", "failed")}
    return _page(
        account,
        request,
        "campaigns/autoresponder_detail.html",
        {
            "autoresponder": ar,
            "summary": selectors.trigger_summary(autoresponder=ar),
            "statistics": statistics,
            "totals": totals,
            "problems": {} if ar.active else services.autoresponder_problems(autoresponder=ar),
        },
    )


@customer_view()
def autoresponder_edit(
    request: HttpRequest, account: Account, autoresponder_id: int
) -> HttpResponse:
    ar = _autoresponder(account, autoresponder_id)
    form = AutoresponderForm(
        request.POST or None, autoresponder=ar, initial=AutoresponderForm.initial_for(ar)
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.autoresponder_update(autoresponder=ar, **form.changes())
        except CampaignError as error:
            for field, message in error.errors.items():
                form.add_error(field if field in form.fields else None, message)
        except Http404:
            form.add_error("trigger_campaign_id", _("Choose one of your campaigns."))
        else:
            messages.success(request, _("The settings were saved."))
            return redirect("campaigns:autoresponder_detail", autoresponder_id=ar.pk)
    return _page(
        account,
        request,
        "campaigns/autoresponder_edit.html",
        {"autoresponder": ar, "form": form},
    )


def _switch(request: HttpRequest, ar: Autoresponder, action: Any, done: str) -> HttpResponse:
    try:
        action(autoresponder=ar)
    except CampaignError as error:
        _errors(request, error)
    else:
        messages.success(request, done)
    return redirect("campaigns:autoresponder_detail", autoresponder_id=ar.pk)


@customer_view()
@require_POST
def autoresponder_activate(
    request: HttpRequest, account: Account, autoresponder_id: int
) -> HttpResponse:
    ar = _autoresponder(account, autoresponder_id)
    done = _("The autoresponder is on: it answers triggers from now on.")
    return _switch(request, ar, services.autoresponder_activate, done)


@customer_view()
@require_POST
def autoresponder_deactivate(
    request: HttpRequest, account: Account, autoresponder_id: int
) -> HttpResponse:
    ar = _autoresponder(account, autoresponder_id)
    done = _("The autoresponder is off: nothing is sent until you switch it on.")
    return _switch(request, ar, services.autoresponder_deactivate, done)


@customer_view()
@require_POST
def autoresponder_delete(
    request: HttpRequest, account: Account, autoresponder_id: int
) -> HttpResponse:
    ar = _autoresponder(account, autoresponder_id)
    services.autoresponder_delete(autoresponder=ar)
    messages.success(request, _("The autoresponder %(name)s was deleted.") % {"name": ar.name})
    return redirect("campaigns:autoresponders")


# -- a mail of the sequence ----------------------------------------------------------------


def _step_initial(step: AutoresponderStep | None, account: Account) -> dict[str, Any]:
    if step is None:
        return {
            "from_name": account.default_from_name,
            "from_email": account.default_from_email,
            "tracking": True,
            "delay": 0,
            "delay_unit": "minutes",
        }
    campaign = step.campaign
    return {
        **{f: getattr(campaign, f) for f in TEXT_FIELDS if f != "name"},
        "tracking": campaign.tracking,
        **StepForm.delay_initial(step.delay_minutes),
    }


def _step_editor(
    request: HttpRequest,
    account: Account,
    ar: Autoresponder,
    form: StepForm,
    step: AutoresponderStep | None,
) -> HttpResponse:
    preview_html, preview_subject, problems = "", "", {}
    members = list(ar.list.members.filter(status="active").order_by("created_at")[:20])
    if step is not None:
        problems = campaign_problems(campaign=step.campaign)
        problems.pop("targets", None)
        try:
            rendered = campaign_selectors.campaign_preview(campaign=step.campaign, member=None)
            preview_html, preview_subject = rendered.html, rendered.subject
        except TemplateError:
            pass  # the problems say why; the preview stays empty
    return _page(
        account,
        request,
        "campaigns/autoresponder_step.html",
        {
            "autoresponder": ar,
            "step": step,
            "form": form,
            "problems": problems,
            "preview_html": preview_html,
            "preview_subject": preview_subject,
            "preview_members": members,
            "domains": sorted(campaign_selectors.verified_domains(account=account)),
            "test_form": TestSendForm(),
        },
    )


def _step_saved(request: HttpRequest, ar: Autoresponder) -> HttpResponse:
    messages.success(request, _("The mail was saved."))
    return redirect("campaigns:autoresponder_detail", autoresponder_id=ar.pk)


@customer_view()
def autoresponder_step_create(
    request: HttpRequest, account: Account, autoresponder_id: int
) -> HttpResponse:
    ar = _autoresponder(account, autoresponder_id)
    first = not ar.steps.exists()
    form = StepForm(
        request.POST or None, account=account, first=first, initial=_step_initial(None, account)
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.autoresponder_step_add(autoresponder=ar, user=_user(request), **form.changes())
        except CampaignError as error:
            form.add_problems(error.errors)
        else:
            return _step_saved(request, ar)
    return _step_editor(request, account, ar, form, None)


@customer_view()
def autoresponder_step_edit(
    request: HttpRequest, account: Account, autoresponder_id: int, step_id: int
) -> HttpResponse:
    step = _step(account, autoresponder_id, step_id)
    ar = step.autoresponder
    first = not ar.steps.filter(position__lt=step.position).exists()
    form = StepForm(
        request.POST or None, account=account, first=first, initial=_step_initial(step, account)
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.autoresponder_step_update(step=step, **form.changes())
        except CampaignError as error:
            form.add_problems(error.errors)
        else:
            return _step_saved(request, ar)
    return _step_editor(request, account, ar, form, step)


@customer_view()
@require_POST
def autoresponder_step_test(
    request: HttpRequest, account: Account, autoresponder_id: int, step_id: int
) -> HttpResponse:
    step = _step(account, autoresponder_id, step_id)
    back = redirect(
        "campaigns:autoresponder_step_edit", autoresponder_id=autoresponder_id, step_id=step.pk
    )
    form = TestSendForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, str(error))
        return back
    member = None
    if form.cleaned_data["member_id"]:
        member = campaign_selectors.account_member_get(
            account=account, member_id=form.cleaned_data["member_id"]
        )
    try:
        pipeline.campaign_send_test(
            campaign=step.campaign, emails=form.cleaned_data["emails"], member=member
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
    return back


@customer_view()
@require_POST
def autoresponder_step_delete(
    request: HttpRequest, account: Account, autoresponder_id: int, step_id: int
) -> HttpResponse:
    step = _step(account, autoresponder_id, step_id)
    try:
        services.autoresponder_step_delete(step=step)
    except CampaignError as error:
        _errors(request, error)
    else:
        messages.success(request, _("The mail was removed."))
    return redirect("campaigns:autoresponder_detail", autoresponder_id=autoresponder_id)
