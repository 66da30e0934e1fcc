from __future__ import annotations

from datetime import datetime
from typing import Any

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import Account
from campaigns.models import DeliveryStatus
from members.models import List, Segment

TARGET_FIELDS = ("list_ids", "segment_ids", "exclude_list_ids", "exclude_segment_ids")
# Problems of campaigns.services keyed "targets" are shown on the lists to send to.
PROBLEM_FIELDS = {"targets": "list_ids"}


class SegmentChoice(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.list.name}: {obj.name}"


def _lists(label: Any, help_text: Any = "") -> forms.ModelMultipleChoiceField:
    return forms.ModelMultipleChoiceField(
        label=label,
        queryset=List.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=help_text,
    )


def _segments(label: Any, help_text: Any = "") -> SegmentChoice:
    return SegmentChoice(
        label=label,
        queryset=Segment.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=help_text,
    )


class CampaignForm(forms.Form):
    """The editor. Targets are offered from the account's own lists and segments only, so
    another account's id is "not one of the available choices"."""

    name = forms.CharField(
        label=_("Name"), max_length=200, help_text=_("For you; recipients do not see it.")
    )
    subject = forms.CharField(label=_("Subject"), max_length=255, required=False)
    preheader = forms.CharField(
        label=_("Preheader"),
        max_length=255,
        required=False,
        help_text=_("The short text many mail programs show after the subject."),
    )
    from_name = forms.CharField(label=_("Sender name"), max_length=200, required=False)
    from_email = forms.EmailField(label=_("Sender address"), required=False)
    reply_to = forms.EmailField(
        label=_("Reply-to address"),
        required=False,
        help_text=_("Where replies go, when not to the sender address."),
    )
    html = forms.CharField(
        label=_("Message (HTML)"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 18, "spellcheck": "false", "class": "mono"}),
        help_text=_(
            "Merge tags print a member's fields: {{ firstname }}, or with a fallback "
            '{{ firstname | default: "friend" }}. {{ unsubscribe_url }} is the link to leave '
            "the list."
        ),
    )
    text = forms.CharField(
        label=_("Text version"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 8, "class": "mono"}),
        help_text=_("Leave empty to make it from the HTML."),
    )
    tracking = forms.BooleanField(label=_("Track opens and clicks"), required=False, initial=True)
    list_ids = _lists(_("Lists"))
    segment_ids = _segments(_("Segments"))
    exclude_list_ids = _lists(
        _("Skip members of these lists"), _("Their addresses get nothing, whatever list.")
    )
    exclude_segment_ids = _segments(_("Skip members of these segments"))

    def __init__(self, *args: Any, account: Account, resend: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.account = account
        if resend:
            # A resend goes to the undelivered of the campaign it repeats.
            for name in TARGET_FIELDS:
                del self.fields[name]
            return
        lists = List.objects.filter(account=account).order_by("name", "pk")
        segments = (
            Segment.objects.filter(list__account=account)
            .select_related("list")
            .order_by("list__name", "name", "pk")
        )
        for name in TARGET_FIELDS:
            field = self.fields[name]
            assert isinstance(field, forms.ModelMultipleChoiceField)  # noqa: S101 - above
            field.queryset = lists if "list" in name else segments

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        for kind, label in (("list", _("list")), ("segment", _("segment"))):
            both = set(data.get(f"{kind}_ids") or []) & set(data.get(f"exclude_{kind}_ids") or [])
            if both:
                self.add_error(
                    f"exclude_{kind}_ids",
                    _("A %(kind)s cannot be both sent to and skipped: %(names)s")
                    % {"kind": label, "names": ", ".join(sorted(str(o) for o in both))},
                )
        return data

    def changes(self) -> dict[str, Any]:
        """The cleaned values as campaigns.services takes them."""
        data = self.cleaned_data
        changes = {
            name: data[name] for name in self.fields if name not in TARGET_FIELDS and name in data
        }
        for name in TARGET_FIELDS:
            if name in self.fields:
                changes[name] = [obj.pk for obj in data.get(name) or []]
        return changes

    def add_problems(self, problems: dict[str, str]) -> None:
        for field, message in problems.items():
            name = PROBLEM_FIELDS.get(field, field)
            self.add_error(name if name in self.fields else None, message)

    def target_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in TARGET_FIELDS if name in self.fields]


class SendForm(forms.Form):
    """Send now, or at a time in the account's time zone (the view activates it)."""

    when = forms.ChoiceField(
        label=_("When"),
        choices=[("now", _("Now")), ("later", _("At a later time"))],
        initial="now",
        widget=forms.RadioSelect,
    )
    scheduled_at = forms.DateTimeField(
        label=_("Date and time"),
        required=False,
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("when") != "later":
            data["scheduled_at"] = None
            return data
        at: datetime | None = data.get("scheduled_at")
        if at is None:
            if "scheduled_at" not in self.errors:
                self.add_error("scheduled_at", _("Choose when to send it."))
        elif at <= timezone.now():
            self.add_error("scheduled_at", _("Choose a time in the future."))
        return data


class TestSendForm(forms.Form):
    emails = forms.CharField(
        label=_("Send a test to"),
        max_length=2000,
        help_text=_("Up to ten addresses, separated by commas."),
    )
    member_id = forms.CharField(required=False, label=_("Show it as"))

    def clean_emails(self) -> list[str]:
        raw = self.cleaned_data["emails"].replace(";", ",").replace("\n", ",")
        emails = [e.strip() for e in raw.split(",") if e.strip()]
        validator = forms.EmailField()
        for email in emails:
            validator.clean(email)
        if not emails:
            raise forms.ValidationError(_("Give at least one address."))
        if len(emails) > 10:
            raise forms.ValidationError(_("Up to ten addresses, please."))
        return emails


class DeliveryFilterForm(forms.Form):
    status = forms.ChoiceField(label=_("Status"), required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        status = self.fields["status"]
        assert isinstance(status, forms.ChoiceField)  # noqa: S101 - declared above
        status.choices = [("", _("All recipients")), *DeliveryStatus.choices]
