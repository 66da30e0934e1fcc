"""The dashboard's autoresponder forms: a new one (name, list, trigger), its settings, and
a mail of the sequence (the campaign editor's form, with a delay instead of recipients)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from accounts.models import Account
from campaigns.autoresponder_selectors import trigger_campaigns, trigger_fields
from campaigns.forms import CampaignForm
from campaigns.models_autoresponders import (
    Autoresponder,
    DateDirection,
    FieldChangeKind,
    TriggerKind,
)
from members.models import List

HOURS = [("", _("Any time"))] + [(str(h), f"{h:02d}:00") for h in range(24)]
END_HOURS = [("", _("Any time"))] + [(str(h), f"{h:02d}:00") for h in range(1, 25)]
UNITS = {"minutes": 1, "hours": 60, "days": 60 * 24}


class AutoresponderCreateForm(forms.Form):
    name = forms.CharField(
        label=_("Name"), max_length=200, help_text=_("For you; recipients do not see it.")
    )
    list = forms.ModelChoiceField(label=_("List"), queryset=List.objects.none())
    trigger = forms.ChoiceField(label=_("Trigger"), choices=TriggerKind.choices)

    def __init__(self, *args: Any, account: Account, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        lists = self.fields["list"]
        assert isinstance(lists, forms.ModelChoiceField)  # noqa: S101 - declared above
        lists.queryset = List.objects.filter(account=account).order_by("name", "pk")


class AutoresponderForm(forms.Form):
    """The settings; the trigger's own fields are shown for the trigger chosen."""

    name = forms.CharField(label=_("Name"), max_length=200)
    trigger = forms.ChoiceField(label=_("Trigger"), choices=TriggerKind.choices)
    field_name = forms.ChoiceField(label=_("Field"), required=False)
    date_direction = forms.ChoiceField(
        label=_("When"), choices=DateDirection.choices, required=False
    )
    days = forms.IntegerField(label=_("Days"), min_value=0, max_value=36_500, required=False)
    yearly = forms.BooleanField(label=_("Every year (a birthday, an anniversary)"), required=False)
    change = forms.ChoiceField(label=_("Change"), choices=FieldChangeKind.choices, required=False)
    field_value = forms.CharField(
        label=_("Value"),
        max_length=255,
        required=False,
        help_text=_("As stored: for a choice the option's number, for yes/no 1 or 0."),
    )
    threshold = forms.DecimalField(label=_("Number"), required=False, max_digits=20)
    trigger_campaign_id = forms.ChoiceField(label=_("Campaign"), required=False)
    window_start_hour = forms.ChoiceField(label=_("Send from"), choices=HOURS, required=False)
    window_end_hour = forms.ChoiceField(label=_("Send until"), choices=END_HOURS, required=False)
    block_days = forms.IntegerField(
        label=_("Block time (days)"),
        min_value=0,
        max_value=36_500,
        required=False,
        help_text=_(
            "No new start of this autoresponder for a member within so many days. 0: none."
        ),
    )
    cap_per_member = forms.IntegerField(
        label=_("At most per member"),
        min_value=0,
        max_value=1_000_000,
        required=False,
        help_text=_("How many times a member may get this autoresponder at all. 0: no limit."),
    )

    def __init__(self, *args: Any, autoresponder: Autoresponder, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        fields = self.fields["field_name"]
        assert isinstance(fields, forms.ChoiceField)  # noqa: S101 - declared above
        fields.choices = [("", "—")] + [
            (f.name, f"{f.label} ({f.get_format_display()})")
            for f in trigger_fields(autoresponder=autoresponder)
        ]
        campaigns = self.fields["trigger_campaign_id"]
        assert isinstance(campaigns, forms.ChoiceField)  # noqa: S101 - declared above
        campaigns.choices = [("", "—")] + [
            (str(c.pk), c.name) for c in trigger_campaigns(account=autoresponder.account)
        ]

    def changes(self) -> dict[str, Any]:
        """The cleaned values as campaigns.autoresponders takes them."""
        data = dict(self.cleaned_data)
        for name in ("days", "block_days", "cap_per_member"):
            data[name] = data.get(name) or 0
        for name in ("date_direction", "change"):
            data[name] = data.get(name) or self.fields[name].choices[0][0]  # type: ignore[attr-defined]
        return data

    @staticmethod
    def initial_for(autoresponder: Autoresponder) -> dict[str, Any]:
        ar = autoresponder
        return {
            name: getattr(ar, name)
            for name in (
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
        }


class StepForm(CampaignForm):
    """A mail of the sequence: the campaign editor's fields (its recipients are the
    trigger's), and when it goes."""

    delay = forms.IntegerField(label=_("Wait"), min_value=0, max_value=527_040, initial=0)
    delay_unit = forms.ChoiceField(
        label=_("Unit"),
        choices=[("minutes", _("minutes")), ("hours", _("hours")), ("days", _("days"))],
        initial="minutes",
    )

    def __init__(self, *args: Any, account: Account, first: bool, **kwargs: Any) -> None:
        super().__init__(*args, account=account, resend=True, **kwargs)
        del self.fields["name"]  # named after the autoresponder and its place
        delay = self.fields["delay"]
        delay.help_text = (
            _("After the trigger fires.") if first else _("After the mail before was sent.")
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        minutes = (data.get("delay") or 0) * UNITS.get(data.get("delay_unit") or "minutes", 1)
        if minutes > 366 * 24 * 60:
            self.add_error("delay", _("At most a year, please."))
        data["delay_minutes"] = minutes
        return data

    def changes(self) -> dict[str, Any]:
        changes = super().changes()
        changes.pop("delay", None)
        changes.pop("delay_unit", None)
        changes["delay_minutes"] = self.cleaned_data["delay_minutes"]
        return changes

    @staticmethod
    def delay_initial(minutes: int) -> dict[str, Any]:
        for unit, size in (("days", 60 * 24), ("hours", 60)):
            if minutes and minutes % size == 0:
                return {"delay": minutes // size, "delay_unit": unit}
        return {"delay": minutes, "delay_unit": "minutes"}
