"""Reads of autoresponders for the dashboard, always scoped to an account: another
account's ids are a 404, like missing ones."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Count, QuerySet, Sum
from django.http import Http404
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from accounts.models import Account
from campaigns.models import Campaign, CampaignKind, CampaignStatus, Delivery, DeliveryStatus
from campaigns.models_autoresponders import (
    Autoresponder,
    AutoresponderStep,
    DateDirection,
    FieldChangeKind,
    TriggerKind,
)
from campaigns.models_tracking import CampaignStats
from members.models import Field, FieldFormat


def autoresponders_for_account(*, account: Account) -> QuerySet[Autoresponder]:
    """The account's autoresponders by name, with their list, number of mails and how
    many were sent (the senders' counters)."""
    return (
        Autoresponder.objects.filter(account=account)
        .select_related("list")
        .annotate(
            step_count=Count("steps", distinct=True),
            sent=Sum("steps__campaign__sent"),
        )
        .order_by("name", "pk")
    )


def autoresponder_get(*, account: Account, autoresponder_id: int | str) -> Autoresponder:
    try:
        return Autoresponder.objects.select_related("list", "account", "trigger_campaign").get(
            account=account, pk=int(autoresponder_id)
        )
    except (Autoresponder.DoesNotExist, ValueError, TypeError, OverflowError):
        raise Http404("autoresponder") from None


def autoresponder_step_get(
    *, autoresponder: Autoresponder, step_id: int | str
) -> AutoresponderStep:
    try:
        return AutoresponderStep.objects.select_related("campaign__account").get(
            autoresponder=autoresponder, pk=int(step_id)
        )
    except (AutoresponderStep.DoesNotExist, ValueError, TypeError, OverflowError):
        raise Http404("step") from None


def trigger_campaigns(*, account: Account) -> QuerySet[Campaign]:
    """The campaigns an opened/clicked/not-opened trigger may name: the account's own,
    once they have been sent (or are sending)."""
    return Campaign.objects.filter(
        account=account,
        kind=CampaignKind.CAMPAIGN,
        status__in=[CampaignStatus.SENDING, CampaignStatus.PAUSED, CampaignStatus.SENT],
    ).order_by("-created_at", "-pk")


def trigger_fields(*, autoresponder: Autoresponder) -> list[Field]:
    """The list's fields a date or field-changed trigger may watch."""
    fields = autoresponder.list.fields.exclude(name__in=("email", "mobile")).exclude(
        format=FieldFormat.PASSWORD
    )
    if autoresponder.trigger == TriggerKind.DATE:
        fields = fields.filter(format=FieldFormat.DATE)
    return list(fields.order_by("position", "pk"))


@dataclass
class StepStatistics:
    step: AutoresponderStep
    number: int  # 1, 2, … in the order of the sequence
    counts: dict[str, int] = field(default_factory=dict)  # by DeliveryStatus
    opens: int = 0
    unique_opens: int = 0
    clicks: int = 0
    unique_clicks: int = 0
    machine_opens: int = 0
    machine_clicks: int = 0

    @property
    def delay(self) -> str:
        """How long after the trigger (the first mail) or the mail before it goes."""
        minutes = self.step.delay_minutes
        if self.number == 1:
            if not minutes:
                return _("At once")
            return _("%(time)s after the trigger") % {"time": delay_text(minutes)}
        if not minutes:
            return _("Right after the mail before")
        return _("%(time)s after the mail before") % {"time": delay_text(minutes)}

    @property
    def waiting(self) -> int:
        return self.counts.get(DeliveryStatus.QUEUED, 0) + self.counts.get(
            DeliveryStatus.SENDING, 0
        )


def autoresponder_statistics(*, autoresponder: Autoresponder) -> list[StepStatistics]:
    """Per step: its Delivery rows by status (one grouped query for all steps), and opens
    and clicks from the tracking counters (CampaignStats)."""
    steps = list(autoresponder.steps.select_related("campaign").order_by("position"))
    campaign_ids = [step.campaign_id for step in steps]
    counts: dict[int, dict[str, int]] = {
        pk: dict.fromkeys(DeliveryStatus.values, 0) for pk in campaign_ids
    }
    grouped = (
        Delivery.objects.filter(campaign_id__in=campaign_ids)
        .values_list("campaign_id", "status")
        .annotate(n=Count("id"))
    )
    for campaign_id, status, n in grouped:
        counts[campaign_id][status] = n
    stats = {s.campaign_id: s for s in CampaignStats.objects.filter(campaign_id__in=campaign_ids)}
    result = []
    for number, step in enumerate(steps, start=1):
        row = StepStatistics(step=step, number=number, counts=counts[step.campaign_id])
        found = stats.get(step.campaign_id)
        if found is not None:
            row.opens, row.unique_opens = found.opens, found.unique_opens
            row.clicks, row.unique_clicks = found.clicks, found.unique_clicks
            row.machine_opens, row.machine_clicks = found.machine_opens, found.machine_clicks
        result.append(row)
    return result


def delay_text(minutes: int) -> str:
    """90 minutes, 2 hours, 3 days: the largest whole unit."""
    if minutes and minutes % (60 * 24) == 0:
        return _days(minutes // (60 * 24))
    if minutes and minutes % 60 == 0:
        n = minutes // 60
        return ngettext("%(n)d hour", "%(n)d hours", n) % {"n": n}
    return ngettext("%(n)d minute", "%(n)d minutes", minutes) % {"n": minutes}


def _days(n: int) -> str:
    return ngettext("%(n)d day", "%(n)d days", n) % {"n": n}


def trigger_summary(*, autoresponder: Autoresponder) -> str:
    """The trigger in a sentence, for the list and the overview."""
    ar = autoresponder
    field_label = ar.field_name
    if ar.field_name:
        found = ar.list.fields.filter(name=ar.field_name).values_list("label", flat=True).first()
        field_label = found or ar.field_name
    campaign = ar.trigger_campaign.name if ar.trigger_campaign else "?"
    if ar.trigger == TriggerKind.SUBSCRIBED:
        return _("When a member joins %(list)s") % {"list": ar.list.name}
    if ar.trigger == TriggerKind.UNSUBSCRIBED:
        return _("When a member leaves %(list)s") % {"list": ar.list.name}
    if ar.trigger == TriggerKind.DATE:
        if ar.date_direction == DateDirection.ON or not ar.days:
            text = _("On the date in %(field)s") % {"field": field_label}
        elif ar.date_direction == DateDirection.BEFORE:
            text = _("%(days)s before the date in %(field)s") % {
                "days": _days(ar.days),
                "field": field_label,
            }
        else:
            text = _("%(days)s after the date in %(field)s") % {
                "days": _days(ar.days),
                "field": field_label,
            }
        return f"{text}, {_('every year')}" if ar.yearly else text
    if ar.trigger == TriggerKind.FIELD_CHANGED:
        if ar.change == FieldChangeKind.ABOVE:
            return _("When %(field)s rises to %(number)s or more") % {
                "field": field_label,
                "number": ar.threshold,
            }
        if ar.change == FieldChangeKind.BELOW:
            return _("When %(field)s falls below %(number)s") % {
                "field": field_label,
                "number": ar.threshold,
            }
        return _("When %(field)s changes to %(value)s") % {
            "field": field_label,
            "value": ar.field_value,
        }
    if ar.trigger == TriggerKind.OPENED:
        return _("When a member opens %(campaign)s") % {"campaign": campaign}
    if ar.trigger == TriggerKind.CLICKED:
        return _("When a member clicks a link in %(campaign)s") % {"campaign": campaign}
    return _("When a member has not opened %(campaign)s %(days)s after it was sent") % {
        "campaign": campaign,
        "days": _days(ar.days),
    }
