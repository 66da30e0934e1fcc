from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from members.models import Duplicates, FieldFormat, HandleExisting


class ListForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=200)
    duplicates = forms.ChoiceField(
        label=_("Duplicates"), choices=Duplicates.choices, initial=Duplicates.DISALLOW
    )
    double_optin = forms.BooleanField(
        label=_("Double opt-in"),
        required=False,
        help_text=_("New members confirm their address by email before they receive mail."),
    )


class CustomFieldForm(forms.Form):
    label = forms.CharField(label=_("Label"), max_length=200)
    format = forms.ChoiceField(
        label=_("Format"),
        choices=[(f.value, f.label) for f in FieldFormat if f != FieldFormat.PASSWORD],
    )
    options = forms.CharField(
        label=_("Options"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("For choice fields: one option per line."),
    )
    required = forms.BooleanField(label=_("Required"), required=False)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        options = [o.strip() for o in (data.get("options") or "").splitlines() if o.strip()]
        if data.get("format") in (FieldFormat.CHOICE, FieldFormat.MULTI) and not options:
            self.add_error("options", _("A choice field needs at least one option."))
        data["options"] = options
        return data


class MemberSearchForm(forms.Form):
    q = forms.CharField(label=_("Search"), required=False)
    status = forms.ChoiceField(label=_("Status"), required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from members.models import MemberStatus

        super().__init__(*args, **kwargs)
        status = self.fields["status"]
        assert isinstance(status, forms.ChoiceField)  # noqa: S101 - declared above
        status.choices = [("", _("All statuses")), *MemberStatus.choices]


class ImportForm(forms.Form):
    file = forms.FileField(
        label=_("CSV file"),
        help_text=_("From Excel or any other tool: commas, semicolons or tabs, any encoding."),
    )
    handle_existing = forms.ChoiceField(
        label=_("Members already on the list"),
        choices=HandleExisting.choices,
        initial=HandleExisting.UPDATE,
    )
    resubscribe = forms.BooleanField(
        label=_("Re-subscribe unsubscribed and bounced members found in the file"),
        required=False,
        help_text=_("Only when they have agreed to receive mail again."),
    )
    send_errors_to = forms.EmailField(label=_("Email the error report to"), required=False)


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        label=_("Name"), max_length=100, help_text=_("Where the key is used, e.g. 'Webshop'.")
    )
    read_only = forms.BooleanField(label=_("Read only"), required=False)


GROWTH_DAYS = 90  # the growth page's period unless another is chosen


class GrowthForm(forms.Form):
    days = forms.TypedChoiceField(
        label=_("Period"),
        coerce=int,
        required=False,
        empty_value=None,
        initial=GROWTH_DAYS,
        choices=[(30, _("Last 30 days")), (90, _("Last 90 days")), (365, _("Last 12 months"))],
    )
