"""Lists, their fields, and members.

A member's field values live in ``data`` (JSON, keyed by field name) except email and
mobile, which are columns because duplicates are detected on them. ``email_key`` and
``mobile_key`` carry the value only where the list refuses duplicates on that field, so
a plain unique index enforces the list's policy under concurrency (NULLs never clash).
"""

import uuid

from django.db import models
from django.db.models import Q
from django.utils.timezone import now
from django.utils.translation import gettext_lazy as _

from accounts.models import Account


class Duplicates(models.TextChoices):
    """Heyloyalty's duplicate policy names (API `duplicates`)."""

    ALLOW = "allow", _("Allow duplicates")
    ALLOW_EMAIL = "allow_email", _("Allow duplicate emails, unique mobiles")
    ALLOW_MOBILE = "allow_mobile", _("Allow duplicate mobiles, unique emails")
    DISALLOW = "disallow", _("No duplicates")

    @property
    def unique_email(self) -> bool:
        return self in (Duplicates.DISALLOW, Duplicates.ALLOW_MOBILE)

    @property
    def unique_mobile(self) -> bool:
        return self in (Duplicates.DISALLOW, Duplicates.ALLOW_EMAIL)


class List(models.Model):
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="lists")
    name = models.CharField(_("name"), max_length=200)
    country_id = models.PositiveIntegerField(_("country"), default=1)
    timezone = models.CharField(_("time zone"), max_length=64, default="Europe/Copenhagen")
    date_format = models.CharField(_("date format"), max_length=32, default="dd-mm-yyyy")
    duplicates = models.CharField(
        _("duplicates"), max_length=16, choices=Duplicates.choices, default=Duplicates.DISALLOW
    )
    double_optin = models.BooleanField(_("double opt-in"), default=False)
    created_at = models.DateTimeField(_("created"), default=now)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("list")
        verbose_name_plural = _("lists")
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    @property
    def policy(self) -> Duplicates:
        return Duplicates(self.duplicates)


class FieldKind(models.TextChoices):
    FIXED = "fixed", _("Standard field")
    CUSTOM = "custom", _("Custom field")


class FieldFormat(models.TextChoices):
    TEXT = "text", _("Text")
    NUMBER = "number", _("Number")
    DATE = "date", _("Date")
    BOOLEAN = "boolean", _("Yes/no")
    CHOICE = "choice", _("Choice")
    MULTI = "multi", _("Multiple choice")
    PASSWORD = "password", _("Password")
    SHOP = "shop", _("Shop")


class Field(models.Model):
    list = models.ForeignKey(List, on_delete=models.CASCADE, related_name="fields")
    name = models.SlugField(_("name"), max_length=64)
    label = models.CharField(_("label"), max_length=200)
    kind = models.CharField(_("type"), max_length=8, choices=FieldKind.choices)
    format = models.CharField(_("format"), max_length=16, choices=FieldFormat.choices)
    required = models.BooleanField(_("required"), default=False)
    fallback = models.CharField(_("fallback"), max_length=255, blank=True)
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["position", "id"]
        constraints = [models.UniqueConstraint(fields=["list", "name"], name="field_unique_name")]

    def __str__(self) -> str:
        return self.name

    @property
    def has_options(self) -> bool:
        return self.format in (FieldFormat.CHOICE, FieldFormat.MULTI, FieldFormat.SHOP)


class FieldOption(models.Model):
    """An option of a choice or multi field. ``value`` is the option id the API shows
    (sex: 1 male, 2 female; country: the country ids)."""

    field = models.ForeignKey(Field, on_delete=models.CASCADE, related_name="options")
    value = models.PositiveIntegerField()
    label = models.CharField(max_length=200)

    class Meta:
        ordering = ["value"]
        constraints = [
            models.UniqueConstraint(fields=["field", "value"], name="option_unique_value")
        ]

    def __str__(self) -> str:
        return self.label


class MemberStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    UNCONFIRMED = "unconfirmed", _("Unconfirmed")
    UNSUBSCRIBED = "unsubscribed", _("Unsubscribed")
    BOUNCED = "bounced", _("Bounced")
    COMPLAINED = "complained", _("Complained")


# Members in these states are never mailed, and an import never makes them active again
# unless it says so explicitly.
SUPPRESSED = (MemberStatus.UNSUBSCRIBED, MemberStatus.BOUNCED, MemberStatus.COMPLAINED)


class Member(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No index of its own: every index below starts with list_id and serves it.
    list = models.ForeignKey(List, on_delete=models.CASCADE, related_name="members", db_index=False)
    email = models.CharField(_("email"), max_length=254, blank=True)
    mobile = models.CharField(_("mobile"), max_length=32, blank=True)
    # NULL is "no key": the unique index ignores it (see the module docstring).
    email_key = models.CharField(max_length=254, null=True, blank=True, editable=False)  # noqa: DJ001
    mobile_key = models.CharField(max_length=32, null=True, blank=True, editable=False)  # noqa: DJ001
    data = models.JSONField(_("fields"), default=dict, blank=True)
    status = models.CharField(
        _("status"), max_length=16, choices=MemberStatus.choices, default=MemberStatus.ACTIVE
    )
    email_status = models.CharField(
        max_length=16, choices=MemberStatus.choices, default=MemberStatus.ACTIVE
    )
    mobile_status = models.CharField(
        max_length=16, choices=MemberStatus.choices, default=MemberStatus.ACTIVE
    )
    consent_source = models.CharField(_("consent source"), max_length=64, blank=True)
    consent_ip = models.GenericIPAddressField(_("consent IP"), null=True, blank=True)
    consent_at = models.DateTimeField(_("consent time"), null=True, blank=True)
    consent_text = models.TextField(_("consent wording"), blank=True)
    imported = models.BooleanField(default=False)
    # When the opt-in confirmation was handed to the mail relay. Set before sending (a
    # conditional update), so a task delivered twice mails nobody twice.
    optin_sent_at = models.DateTimeField(_("confirmation mailed"), null=True, blank=True)
    obscured_at = models.DateTimeField(_("obscured"), null=True, blank=True)
    sent_mail = models.PositiveIntegerField(default=0)
    open_rate = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(_("created"), default=now)
    updated_at = models.DateTimeField(_("updated"), default=now)

    class Meta:
        verbose_name = _("member")
        verbose_name_plural = _("members")
        indexes = [
            models.Index(fields=["list", "email"], name="member_list_email"),
            models.Index(fields=["list", "mobile"], name="member_list_mobile"),
            models.Index(fields=["list", "created_at"], name="member_list_created"),
            # The members still waiting for their confirmation mail, walked in
            # (created_at, id) order by members.optin.import_optins_send. Partial: the
            # usual active member costs no entry.
            models.Index(
                fields=["list", "created_at", "id"],
                name="member_optin_pending",
                condition=Q(status="unconfirmed", optin_sent_at__isnull=True),
            ),
        ]
        constraints = [
            models.UniqueConstraint(fields=["list", "email_key"], name="member_unique_email_key"),
            models.UniqueConstraint(fields=["list", "mobile_key"], name="member_unique_mobile_key"),
            models.CheckConstraint(
                condition=~Q(email="") | ~Q(mobile="") | Q(obscured_at__isnull=False),
                name="member_has_email_or_mobile",
            ),
        ]

    def __str__(self) -> str:
        return self.email or self.mobile or str(self.id)


def empty_list() -> list[object]:
    # Not ``default=list``: in these model bodies ``list`` is the List foreign key.
    return []


class ImportStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")


class HandleExisting(models.TextChoices):
    """What an import does with rows that match a member already on the list."""

    UPDATE = "update", _("Add new members and update existing ones")
    UPDATE_ONLY = "updateOnly", _("Only update existing members")
    IGNORE = "ignore", _("Only add new members")


class Import(models.Model):
    """One CSV import into a list: its options, progress and outcome.

    ``preview`` imports run the whole pipeline and roll it back, leaving the counts.
    """

    list = models.ForeignKey(List, on_delete=models.CASCADE, related_name="imports")
    status = models.CharField(
        max_length=16, choices=ImportStatus.choices, default=ImportStatus.QUEUED
    )
    preview = models.BooleanField(default=False)
    file = models.CharField(max_length=500, editable=False)
    file_name = models.CharField(max_length=255, blank=True)
    options = models.JSONField(default=dict)
    rows_total = models.PositiveIntegerField(default=0)
    rows_done = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    resubscribed = models.PositiveIntegerField(default=0)
    error_count = models.PositiveIntegerField(default=0)
    # The first errors, for the API and the dashboard; all of them are in the report file.
    errors = models.JSONField(default=empty_list, blank=True)
    report = models.CharField(max_length=500, blank=True, editable=False)
    failure = models.TextField(blank=True)
    created_by = models.ForeignKey(
        "accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=now)
    started_at = models.DateTimeField(null=True, blank=True)
    # Bumped while a worker makes progress; a stale one means the worker died.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"import {self.pk} into {self.list_id}"


class Segment(models.Model):
    """Saved conditions over a list's fields and member statuses; its members are computed
    when asked (never stored), so the count is always live.

    ``rules`` is one group: ``{"logic": "and"|"or", "rules": [rule, …]}``, where each rule
    is a condition ``{"field", "op", "values"}`` or another group (members.selectors).
    """

    list = models.ForeignKey(List, on_delete=models.CASCADE, related_name="segments")
    name = models.CharField(_("name"), max_length=200)
    rules = models.JSONField(_("rules"), default=dict)
    created_at = models.DateTimeField(_("created"), default=now)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("segment")
        verbose_name_plural = _("segments")
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name


class WebhookEvent(models.TextChoices):
    """The trigger names of heyloyalty-api.md §5.6 and §8, spelt as the clients send them."""

    SUBSCRIBE = "subscribe", _("Subscribe")
    UPDATE = "update", _("Update")
    UNSUBSCRIBE = "unsubscribe", _("Unsubscribe")
    SPAM_COMPLAINT = "spamComplaint", _("Spam complaint")
    CLICK = "click", _("Click")
    OPEN = "open", _("Open")
    HARDBOUNCE = "hardbounce", _("Hard bounce")
    SENT = "sent", _("Sent")


class Webhook(models.Model):
    """A subscription to a list's events: where to POST them and which ones.

    The secret is shown once, on create, and kept encrypted with the key ring; it signs
    every delivery (members/webhook_delivery.py). ``failures_in_row`` counts failed
    attempts since the last success; at WEBHOOK_FAILURES_TO_DISABLE the webhook is
    switched off (``active`` false, ``disabled_at`` and ``disabled_reason`` set) and its
    owners are told once. Turning it on again clears all three.
    """

    list = models.ForeignKey(List, on_delete=models.CASCADE, related_name="webhooks")
    url = models.URLField(_("URL"), max_length=2000)
    contact_email = models.EmailField(_("contact email"), blank=True)
    events = models.JSONField(_("events"), default=empty_list, blank=True)
    active = models.BooleanField(_("active"), default=True)
    secret_encrypted = models.TextField(editable=False)
    failures_in_row = models.PositiveIntegerField(_("failures in a row"), default=0)
    disabled_at = models.DateTimeField(_("disabled"), null=True, blank=True)
    disabled_reason = models.TextField(_("why it was disabled"), blank=True)
    created_at = models.DateTimeField(_("created"), default=now)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("webhook")
        verbose_name_plural = _("webhooks")
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return self.url


class WebhookDeliveryStatus(models.TextChoices):
    PENDING = "pending", _("Pending")  # waiting for its first try or a retry
    DELIVERED = "delivered", _("Received")  # the receiver answered 2xx
    FAILED = "failed", _("Failed")  # every try failed


class WebhookDelivery(models.Model):
    """One event for one webhook: the payload as it was when the event happened, and
    the outcome of the last try. The webhook's log, and its outbox.

    A webhook's pending deliveries go out oldest first, one at a time: a worker claims
    a few at the head (``claimed_until``, a lease that outlives its tries), so events
    about a member arrive in the order they happened, and a failed head holds back the
    rest until its retry (``next_attempt_at``). ``origin`` names the bulk job that wrote
    the row (``import:<id>``), unique per webhook and member, so a job run twice writes
    each event once.
    """

    id = models.BigAutoField(primary_key=True)
    webhook = models.ForeignKey(
        Webhook, on_delete=models.CASCADE, related_name="deliveries", db_index=False
    )
    event = models.CharField(_("event"), max_length=16, choices=WebhookEvent.choices)
    # Not a foreign key: the log outlives the member (a deleted member's unsubscribe).
    member_id = models.UUIDField(null=True, blank=True)
    origin = models.CharField(max_length=64, blank=True, default="")
    payload = models.JSONField(_("payload"))
    status = models.CharField(
        _("status"),
        max_length=16,
        choices=WebhookDeliveryStatus.choices,
        default=WebhookDeliveryStatus.PENDING,
    )
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt"), default=now)
    claimed_until = models.DateTimeField(null=True, blank=True)
    response_status = models.PositiveSmallIntegerField(_("response status"), null=True, blank=True)
    response_body = models.TextField(_("response"), blank=True)  # the first characters
    error = models.TextField(_("error"), blank=True)
    duration_ms = models.PositiveIntegerField(_("duration (ms)"), null=True, blank=True)
    # The delivery this one replays. An id, not a foreign key: with no relation pointing
    # at it, deleting a webhook (or pruning the log) is one DELETE, however long the log.
    replay_of = models.BigIntegerField(_("replay of"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), default=now)
    delivered_at = models.DateTimeField(_("delivered"), null=True, blank=True)

    class Meta:
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        ordering = ["-id"]
        indexes = [
            # The log, newest first; also the foreign key's index.
            models.Index(fields=["webhook", "id"], name="webhookdelivery_log"),
            # The outbox: a webhook's head, and the beat job's look at every head.
            models.Index(
                fields=["webhook", "id"],
                name="webhookdelivery_pending",
                condition=Q(status="pending"),
            ),
            # Pruning the log.
            models.Index(fields=["created_at"], name="webhookdelivery_created"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["webhook", "member_id", "origin"],
                name="webhookdelivery_unique_origin",
                condition=~Q(origin=""),
            )
        ]

    def __str__(self) -> str:
        return f"{self.event} #{self.pk}"
