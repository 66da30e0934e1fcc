"""Forms of consent: the manager's request, the owner's approval, the consent setting."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext_lazy

from accounts.models import GRANT_HOURS_CHOICES, ManagerAccess


class AccessRequestForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason"),
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 60}),
        help_text=_("The customer reads this in the mail asking for their approval."),
        error_messages={"required": _("Say why you need access.")},
    )

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError(_("Say why you need access."))
        return reason


def _hours_label(hours: int) -> str:
    return str(ngettext_lazy("%(n)s hour", "%(n)s hours", hours) % {"n": hours})


class ApproveForm(forms.Form):
    hours = forms.TypedChoiceField(
        label=_("For how long"),
        coerce=int,
        choices=[(h, h) for h in GRANT_HOURS_CHOICES],
        initial=GRANT_HOURS_CHOICES[0],
        widget=forms.RadioSelect,
        error_messages={
            "required": _("Choose how long access lasts: 1, 4, 8 or 24 hours."),
            "invalid_choice": _("Choose how long access lasts: 1, 4, 8 or 24 hours."),
        },
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Labels are built per form, so they follow the language of the request.
        field = cast(forms.TypedChoiceField, self.fields["hours"])
        field.choices = [(h, _hours_label(h)) for h in GRANT_HOURS_CHOICES]


class DecisionForm(ApproveForm):
    """Approve or deny from the dashboard page."""

    decision = forms.ChoiceField(
        choices=[("approve", _("Approve")), ("deny", _("Deny"))],
        error_messages={
            "required": _("Choose to approve or deny."),
            "invalid_choice": _("Choose to approve or deny."),
        },
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["hours"].required = False

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("decision") == "approve" and not data.get("hours"):
            self.add_error("hours", _("Choose how long access lasts: 1, 4, 8 or 24 hours."))
        return data


class ConsentSettingForm(forms.Form):
    manager_access = forms.ChoiceField(
        label=_("Your account manager"),
        choices=ManagerAccess.choices,
        widget=forms.RadioSelect,
        error_messages={
            "required": _("Choose whether your account manager must ask first."),
            "invalid_choice": _("Choose whether your account manager must ask first."),
        },
    )
