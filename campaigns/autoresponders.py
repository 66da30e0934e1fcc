"""Every write to an autoresponder and its steps, and the check that it may be switched on.

An autoresponder is saved whatever its state of completion; ``autoresponder_problems``
names what keeps it from being switched on, and ``autoresponder_activate`` refuses while
there is anything. Malformed values (no name, an hour that is not one, another account's
list or campaign) are refused at once, as CampaignError naming the field, or Http404.

Switching on moves every step's campaign to "sending" (the pipeline then sends its rows
when they are due) and sets the mark from which triggers count; switching off pauses
them: nothing is sent, rows already written wait. The evaluation itself, once a minute,
is campaigns/autoresponder_triggers.py (``autoresponders_evaluate``, re-exported here).

A step's content may be changed at any time. Changing the links of a step that has sent
mail makes the tracked links of those mails lead to the link at the same position of the
new content (a click token names a position): still a URL of this step, never another.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import transaction
from django.db.models import F, Max
from django.db.models.functions import Coalesce
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import Account, User
from campaigns import services as campaign_services
from campaigns.autoresponder_triggers import (
    BOOLEAN_TEXT,
    autoresponders_evaluate,
)
from campaigns.errors import CampaignError
from campaigns.models import (
    Campaign,
    CampaignKind,
    CampaignStatus,
    Delivery,
    DeliveryStatus,
    Link,
)
from campaigns.models_autoresponders import (
    Autoresponder,
    AutoresponderStep,
    DateDirection,
    FieldChangeKind,
    TriggerKind,
)
from campaigns.pipeline import compile_for, deliveries_added
from campaigns.services import TEXT_FIELDS, campaign_problems
from campaigns.templating import TemplateError
from members.fields import COLUMN_FIELDS
from members.models import FieldFormat, List

__all__ = [
    "SETTINGS",
    "autoresponder_activate",
    "autoresponder_create",
    "autoresponder_deactivate",
    "autoresponder_delete",
    "autoresponder_problems",
    "autoresponder_step_add",
    "autoresponder_step_delete",
    "autoresponder_step_update",
    "autoresponder_update",
    "autoresponders_evaluate",
]

# What autoresponder_create and autoresponder_update take besides the list.
SETTINGS = (
    "name",
    "trigger",
    "field_name",
    "date_direction",
    "days",
    "yearly",
    "change",
    "field_value",
    "threshold",
    "trigger_campaign_id",
    "window_start_hour",
    "window_end_hour",
    "block_days",
    "cap_per_member",
)
STEP_CONTENT = tuple(f for f in (*TEXT_FIELDS, "tracking") if f != "name")
MAX_DAYS = 36_500
MAX_DELAY_MINUTES = 366 * 24 * 60
# The campaign triggers look at the account's own campaigns only.
_CAMPAIGN_TRIGGERS = (TriggerKind.OPENED, TriggerKind.CLICKED, TriggerKind.NOT_OPENED)


# -- checks of single values ---------------------------------------------------------------


def _whole(field: str, value: Any, *, low: int, high: int, empty: bool = False) -> int | None:
    if value in (None, "") and empty:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise CampaignError(
            {field: _("%(value)s is not a whole number.") % {"value": value}}
        ) from None
    if not low <= number <= high:
        raise CampaignError(
            {field: _("Give a number from %(low)d to %(high)d.") % {"low": low, "high": high}}
        )
    return number


def _choice(field: str, value: Any, choices: type[Any]) -> str:
    if value not in choices.values:
        raise CampaignError({field: _("%(value)s is not one of the choices.") % {"value": value}})
    return str(value)


def _threshold(value: Any) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        number = Decimal(str(value).strip().replace(",", "."))
    except InvalidOperation:
        raise CampaignError(
            {"threshold": _("%(value)s is not a number.") % {"value": value}}
        ) from None
    if not number.is_finite() or abs(number) >= Decimal("1e16"):
        raise CampaignError({"threshold": _("%(value)s is not a number.") % {"value": value}})
    return number


def _trigger_campaign(account: Account, value: Any) -> int | None:
    if value in (None, ""):
        return None
    pk = int(_whole("trigger_campaign_id", value, low=1, high=2**62) or 0)
    if not Campaign.objects.filter(account=account, kind=CampaignKind.CAMPAIGN, pk=pk).exists():
        raise Http404("campaign")  # another account's, or none: the same answer
    return pk


def _clean(account: Account, field: str, value: Any) -> Any:
    if field == "name":
        return campaign_services._clean("name", value)
    if field == "trigger":
        return _choice(field, value, TriggerKind)
    if field == "date_direction":
        return _choice(field, value, DateDirection)
    if field == "change":
        return _choice(field, value, FieldChangeKind)
    if field in ("days", "block_days"):
        return _whole(field, value, low=0, high=MAX_DAYS)
    if field == "cap_per_member":
        return _whole(field, value, low=0, high=1_000_000)
    if field == "window_start_hour":
        return _whole(field, value, low=0, high=23, empty=True)
    if field == "window_end_hour":
        return _whole(field, value, low=1, high=24, empty=True)
    if field == "yearly":
        return bool(value)
    if field == "threshold":
        return _threshold(value)
    if field == "trigger_campaign_id":
        return _trigger_campaign(account, value)
    if field in ("field_name", "field_value"):
        return " ".join(str(value or "").split())[: 255 if field == "field_value" else 64]
    raise TypeError(f"unknown autoresponder setting {field}")


def _settings(account: Account, changes: dict[str, Any]) -> dict[str, Any]:
    unknown = set(changes) - set(SETTINGS)
    if unknown:
        raise TypeError(f"unknown autoresponder settings: {', '.join(sorted(unknown))}")
    return {field: _clean(account, field, value) for field, value in changes.items()}


def _locked(autoresponder: Autoresponder) -> Autoresponder:
    locked = (
        Autoresponder.objects.select_for_update(of=("self",))
        .select_related("list", "account")
        .filter(pk=autoresponder.pk)
        .first()
    )
    if locked is None:
        raise Http404("autoresponder")
    return locked


# -- the autoresponder ---------------------------------------------------------------------


@transaction.atomic
def autoresponder_create(
    *, account: Account, member_list: List, name: str, user: User | None = None, **settings: Any
) -> Autoresponder:
    """A new autoresponder, switched off, without steps."""
    if member_list.account_id != account.pk:
        raise Http404("list")
    values = _settings(account, {"name": name, **settings})
    return Autoresponder.objects.create(
        account=account, list=member_list, created_by=user, **values
    )


@transaction.atomic
def autoresponder_update(*, autoresponder: Autoresponder, **changes: Any) -> Autoresponder:
    """Change any of SETTINGS, on or off. While on, the change must leave nothing in
    autoresponder_problems (an active autoresponder is always complete)."""
    locked = _locked(autoresponder)
    values = _settings(locked.account, changes)
    for field, value in values.items():
        setattr(locked, field, value)
    if locked.active:
        problems = autoresponder_problems(autoresponder=locked)
        if problems:
            raise CampaignError(problems)
    # A date trigger looks at the whole list again: what it matches may have changed.
    locked.date_checked = None
    locked.save(update_fields=[*values, "date_checked", "updated_at"])
    for field in (*values, "date_checked", "updated_at"):
        setattr(autoresponder, field, getattr(locked, field))
    return autoresponder


@transaction.atomic
def autoresponder_activate(*, autoresponder: Autoresponder) -> Autoresponder:
    """Switch on: triggers count from now; the steps' campaigns send (rows waiting from
    before it was switched off go out now, when due). Refused while anything is missing."""
    locked = _locked(autoresponder)
    if not locked.active:
        problems = autoresponder_problems(autoresponder=locked)
        if problems:
            raise CampaignError(problems)
        now = timezone.now()
        for step in locked.steps.select_related("campaign"):
            _step_on(step.campaign, now)
        Autoresponder.objects.filter(pk=locked.pk, active=False).update(
            active=True,
            activated_at=now,
            evaluated_at=Coalesce(F("evaluated_at"), now),
            date_checked=None,
            updated_at=now,
        )
    autoresponder.refresh_from_db()
    return autoresponder


def _step_on(campaign: Campaign, now: datetime) -> None:
    """The step's campaign sends: its tracked links stored, its template's version (the
    senders' compiled copy) moved on, senders queued for what waits."""
    _links_store(campaign)
    Campaign.objects.filter(
        pk=campaign.pk, status__in=[CampaignStatus.DRAFT, CampaignStatus.PAUSED]
    ).update(
        status=CampaignStatus.SENDING,
        status_reason="",
        started_at=Coalesce(F("started_at"), now),
        prepared_at=now,
        heartbeat_at=now,
        updated_at=now,
    )
    if campaign.deliveries.filter(status=DeliveryStatus.QUEUED).exists():
        deliveries_added(campaign_id=campaign.pk)


def _links_store(campaign: Campaign) -> None:
    """One Link row per tracked link position of the step's content. Once mail of the
    step has gone out its links are fixed: a click token names a position, and the click
    redirect keeps a campaign's links in memory as never changing. Links may be added
    after them; a template that does not compile yet stores nothing (its problems say
    why)."""
    campaign.refresh_from_db()
    try:
        links = compile_for(campaign).links
    except TemplateError:
        return
    existing = dict(Link.objects.filter(campaign=campaign).values_list("position", "url"))
    if any(existing.get(position, url) != url for position, url in enumerate(links)):
        if Delivery.objects.filter(campaign=campaign).exists():
            raise CampaignError({"html": _links_fixed_message()})
        Link.objects.filter(campaign=campaign).delete()
        existing = {}
    Link.objects.bulk_create(
        Link(campaign=campaign, position=position, url=url)
        for position, url in enumerate(links)
        if position not in existing
    )


def _links_fixed_message() -> str:
    return _(
        "This mail has gone out with its links in this order: they cannot change. Keep "
        "them (you may add links after them), or add a new mail instead."
    )


@transaction.atomic
def autoresponder_deactivate(*, autoresponder: Autoresponder) -> Autoresponder:
    """Switch off: no trigger is looked at and nothing is sent until switched on again."""
    locked = _locked(autoresponder)
    now = timezone.now()
    Autoresponder.objects.filter(pk=locked.pk, active=True).update(active=False, updated_at=now)
    Campaign.objects.filter(
        autoresponder_step__autoresponder=locked, status=CampaignStatus.SENDING
    ).update(status=CampaignStatus.PAUSED, updated_at=now)
    autoresponder.refresh_from_db()
    return autoresponder


@transaction.atomic
def autoresponder_delete(*, autoresponder: Autoresponder) -> None:
    """Delete it with its steps and their mail's record (switch it off to keep those)."""
    locked = _locked(autoresponder)
    Campaign.objects.filter(autoresponder_step__autoresponder=locked).delete()
    locked.delete()


# -- steps ---------------------------------------------------------------------------------


def _step_name(autoresponder: Autoresponder, position: int) -> str:
    name = _("%(name)s: mail %(position)d") % {"name": autoresponder.name, "position": position}
    return name[: campaign_services.NAME_MAX]


def _delay(value: Any) -> int:
    delay = _whole("delay_minutes", value, low=0, high=MAX_DELAY_MINUTES)
    return int(delay or 0)


@transaction.atomic
def autoresponder_step_add(
    *,
    autoresponder: Autoresponder,
    delay_minutes: int = 0,
    user: User | None = None,
    **content: Any,
) -> AutoresponderStep:
    """A new last step with its content (any of STEP_CONTENT). On an active autoresponder
    it must be complete, and sends from now on."""
    locked = _locked(autoresponder)
    _content_check(content)
    position = (locked.steps.aggregate(m=Max("position"))["m"] or 0) + 1
    campaign = campaign_services.campaign_create(
        account=locked.account,
        user=user,
        name=_step_name(locked, position),
        list_ids=[locked.list_id],
        **content,
    )
    Campaign.objects.filter(pk=campaign.pk).update(kind=CampaignKind.AUTORESPONDER)
    step = AutoresponderStep.objects.create(
        autoresponder=locked,
        position=position,
        delay_minutes=_delay(delay_minutes),
        campaign=campaign,
    )
    if locked.active:
        _active_step_check(step)
        _step_on(step.campaign, timezone.now())
    return step


def _content_check(content: dict[str, Any]) -> None:
    unknown = set(content) - set(STEP_CONTENT)
    if unknown:
        raise TypeError(f"unknown step content: {', '.join(sorted(unknown))}")


def _active_step_check(step: AutoresponderStep) -> None:
    problems = _step_problems(step)
    if problems:
        raise CampaignError(problems)


@transaction.atomic
def autoresponder_step_update(
    *, step: AutoresponderStep, delay_minutes: int | None = None, **content: Any
) -> AutoresponderStep:
    """Change a step's delay and content (any of STEP_CONTENT), on or off. On an active
    autoresponder the step must stay complete; the next mail sent has the new content."""
    _content_check(content)
    locked = _locked(step.autoresponder)
    campaign = Campaign.objects.select_for_update().get(pk=step.campaign_id)
    for field, value in content.items():
        setattr(campaign, field, campaign_services._clean(field, value))
    campaign.save(update_fields=[*content, "updated_at"])
    if delay_minutes is not None:
        step.delay_minutes = _delay(delay_minutes)
        step.save(update_fields=["delay_minutes"])
    step.campaign = campaign
    _links_store(campaign)
    if locked.active:
        _active_step_check(step)
        # The senders' compiled copy of the template is keyed by this.
        Campaign.objects.filter(pk=campaign.pk).update(prepared_at=timezone.now())
    return step


@transaction.atomic
def autoresponder_step_delete(*, step: AutoresponderStep) -> None:
    """Remove a step of an autoresponder that is off, with its mail's record."""
    locked = _locked(step.autoresponder)
    if locked.active:
        raise CampaignError({"status": _("Switch the autoresponder off to remove a mail.")})
    Campaign.objects.filter(pk=step.campaign_id).delete()


# -- what blocks switching on --------------------------------------------------------------


def autoresponder_problems(*, autoresponder: Autoresponder) -> dict[str, str]:
    """Everything that keeps the autoresponder from being switched on, keyed by field (a
    step's problems by ``step_<position>``); empty when it may be."""
    problems = _trigger_problems(autoresponder)
    start, end = autoresponder.window_start_hour, autoresponder.window_end_hour
    if (start is None) != (end is None):
        problems["window_end_hour"] = _("Give both hours of the send window, or neither.")
    elif start is not None and end is not None and start == end % 24:
        problems["window_end_hour"] = _("The send window must not start when it ends.")
    steps = list(autoresponder.steps.select_related("campaign__account").order_by("position"))
    if not steps:
        problems["steps"] = _("Add at least one mail.")
    for number, step in enumerate(steps, start=1):
        for message in _step_problems(step).values():
            problems.setdefault(
                f"step_{step.position}",
                _("Mail %(number)d: %(problem)s") % {"number": number, "problem": message},
            )
    return problems


def _step_problems(step: AutoresponderStep) -> dict[str, str]:
    problems = campaign_problems(campaign=step.campaign)
    problems.pop("targets", None)  # the list may be empty today: the trigger decides
    return problems


def _trigger_problems(ar: Autoresponder) -> dict[str, str]:
    trigger = ar.trigger
    if trigger in (TriggerKind.DATE, TriggerKind.FIELD_CHANGED):
        return _field_problems(ar)
    if trigger in _CAMPAIGN_TRIGGERS:
        if ar.trigger_campaign_id is None:
            return {"trigger_campaign_id": _("Choose the campaign.")}
        if trigger == TriggerKind.NOT_OPENED and ar.days < 1:
            return {"days": _("Give the number of days to wait for an open.")}
    return {}


def _field_problems(ar: Autoresponder) -> dict[str, str]:
    fields = {f.name: f for f in ar.list.fields.all()}
    field = fields.get(ar.field_name)
    if ar.trigger == TriggerKind.DATE:
        if field is None or field.format != FieldFormat.DATE:
            return {"field_name": _("Choose a date field of the list.")}
        return {}
    if field is None or field.name in COLUMN_FIELDS or field.format == FieldFormat.PASSWORD:
        return {"field_name": _("Choose a field of the list.")}
    if ar.change == FieldChangeKind.VALUE:
        if not ar.field_value:
            return {"field_value": _("Give the value.")}
        if field.format == FieldFormat.BOOLEAN and ar.field_value.lower() not in BOOLEAN_TEXT:
            return {"field_value": _("Give 1 (yes) or 0 (no).")}
    elif ar.threshold is None:
        return {"threshold": _("Give the number.")}
    elif field.format != FieldFormat.NUMBER:
        return {"field_name": _("Choose a number field to compare with a number.")}
    return {}
