"""Every write to a campaign before it is sent, and the check that it may be sent.

A campaign is edited only as a draft. A scheduled campaign is not edited in place: it is
unscheduled first (``pipeline.campaign_unschedule``, back to draft), so a send that starts
at its scheduled time never picks up a half-saved edit. Sending, scheduling, pausing,
resuming, cancelling and "send again" belong to the pipeline (campaigns/pipeline.py),
whose ``campaign_start`` refuses a campaign while :func:`campaign_problems` finds anything.

Targets name the account's own lists and segments; another account's id is an
``Http404``, as if it did not exist (the API answers 404, a form never offers it).
"""

from __future__ import annotations

import contextlib
import re
import zoneinfo
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import Account, User
from campaigns import selectors
from campaigns.errors import CampaignError
from campaigns.models import Campaign, CampaignStatus, CampaignTarget, SenderDomain
from campaigns.selectors import Targets
from campaigns.templating import template_check
from members.models import List, Segment

NAME_MAX = 200
LINE_MAX = 255
# Hostname labels: letters, digits and inner hyphens, 1 to 63 long; a TLD of letters
# (or punycode). Enough to refuse typos and addresses pasted in by mistake.
_DOMAIN = re.compile(
    r"(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})"
)

# What campaign_update may change, and the fields it writes for each.
TEXT_FIELDS = (
    "name",
    "subject",
    "preheader",
    "from_name",
    "from_email",
    "reply_to",
    "html",
    "text",
)
TARGET_FIELDS = ("list_ids", "segment_ids", "exclude_list_ids", "exclude_segment_ids")
EDITABLE = (*TEXT_FIELDS, "tracking", *TARGET_FIELDS)


# -- checks of single values -------------------------------------------------------------


def _email(field: str, value: str) -> str:
    email = value.strip().lower()
    if email:
        try:
            validate_email(email)
        except ValidationError:
            raise CampaignError(
                {field: _("%(value)s is not a valid email address.") % {"value": value}}
            ) from None
    return email


def _line(field: str, value: str, *, limit: int = LINE_MAX) -> str:
    # Header values: a line break in a subject or a name would start a new header.
    text = " ".join(str(value).split())
    if len(text) > limit:
        raise CampaignError({field: _("At most %(limit)d characters, please.") % {"limit": limit}})
    return text


def _name(value: str) -> str:
    name = _line("name", value, limit=NAME_MAX)
    if not name:
        raise CampaignError({"name": _("A campaign needs a name.")})
    return name


def _clean(field: str, value: Any) -> Any:
    if field == "name":
        return _name(value)
    if field in ("from_email", "reply_to"):
        return _email(field, str(value))
    if field in ("subject", "preheader"):
        return _line(field, value)
    if field == "from_name":
        return _line(field, value, limit=NAME_MAX)
    if field == "tracking":
        return bool(value)
    return str(value)  # html, text: kept as written


def domain_normalize(value: str) -> str:
    """``Example.COM.`` -> ``example.com``; internationalised names in their ASCII form."""
    domain = value.strip().rstrip(".").lower()
    with contextlib.suppress(UnicodeError):  # the pattern below refuses what is left
        domain = domain.encode("idna").decode("ascii")
    if not _DOMAIN.fullmatch(domain):
        raise CampaignError({"domain": _("%(value)s is not a domain name.") % {"value": value}})
    return domain


# -- targets -----------------------------------------------------------------------------


def _ids(field: str, values: Iterable[Any]) -> list[int]:
    ids: list[int] = []
    for value in values:
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise CampaignError({field: _("%(value)s is not an id.") % {"value": value}}) from None
        if number not in ids:
            ids.append(number)
    return ids


def _account_lists(account: Account, ids: Sequence[int]) -> list[List]:
    found = {lst.pk: lst for lst in List.objects.filter(account=account, pk__in=ids)}
    if len(found) != len(set(ids)):
        raise Http404("list")  # another account's, or none at all: the same answer
    return [found[i] for i in ids]


def _account_segments(account: Account, ids: Sequence[int]) -> list[Segment]:
    found = {s.pk: s for s in Segment.objects.filter(list__account=account, pk__in=ids)}
    if len(found) != len(set(ids)):
        raise Http404("segment")
    return [found[i] for i in ids]


def targets_clean(*, account: Account, targets: Targets) -> Targets:
    """The ids as ints, each once, checked to be the account's (else Http404); a list or
    segment may not be both a target and an exclusion."""
    cleaned = Targets(**{f: tuple(_ids(f, getattr(targets, f))) for f in TARGET_FIELDS})
    _account_lists(account, [*cleaned.list_ids, *cleaned.exclude_list_ids])
    _account_segments(account, [*cleaned.segment_ids, *cleaned.exclude_segment_ids])
    if set(cleaned.list_ids) & set(cleaned.exclude_list_ids):
        raise CampaignError(
            {"exclude_list_ids": _("A list cannot be both a target and an exclusion.")}
        )
    if set(cleaned.segment_ids) & set(cleaned.exclude_segment_ids):
        raise CampaignError(
            {"exclude_segment_ids": _("A segment cannot be both a target and an exclusion.")}
        )
    return cleaned


def _targets_write(campaign: Campaign, targets: Targets, *, only: Iterable[str]) -> None:
    """Replace the campaign's targets of the kinds in ``only`` (TARGET_FIELDS names)."""
    kinds = {
        "list_ids": ("list", False),
        "segment_ids": ("segment", False),
        "exclude_list_ids": ("list", True),
        "exclude_segment_ids": ("segment", True),
    }
    rows: list[CampaignTarget] = []
    for field in only:
        column, exclude = kinds[field]
        CampaignTarget.objects.filter(
            campaign=campaign, exclude=exclude, **{f"{column}__isnull": False}
        ).delete()
        rows += [
            CampaignTarget(campaign=campaign, exclude=exclude, **{f"{column}_id": pk})
            for pk in getattr(targets, field)
        ]
    CampaignTarget.objects.bulk_create(rows)


# -- drafts ------------------------------------------------------------------------------


@transaction.atomic
def campaign_create(
    *,
    account: Account,
    name: str,
    user: User | None = None,
    subject: str = "",
    preheader: str = "",
    from_name: str = "",
    from_email: str = "",
    reply_to: str = "",
    html: str = "",
    text: str = "",
    tracking: bool = True,
    list_ids: Sequence[int] = (),
    segment_ids: Sequence[int] = (),
    exclude_list_ids: Sequence[int] = (),
    exclude_segment_ids: Sequence[int] = (),
) -> Campaign:
    """A new draft. Saved even when it could not be sent yet (no subject, a template
    error): :func:`campaign_problems` names what is missing; only malformed values
    (no name, an address that is not one) are refused."""
    targets = targets_clean(
        account=account,
        targets=Targets(
            tuple(list_ids), tuple(segment_ids), tuple(exclude_list_ids), tuple(exclude_segment_ids)
        ),
    )
    values = {
        "name": name,
        "subject": subject,
        "preheader": preheader,
        "from_name": from_name,
        "from_email": from_email,
        "reply_to": reply_to,
        "html": html,
        "text": text,
        "tracking": tracking,
    }
    campaign = Campaign.objects.create(
        account=account,
        created_by=user,
        **{field: _clean(field, value) for field, value in values.items()},
    )
    _targets_write(campaign, targets, only=TARGET_FIELDS)
    return campaign


def _locked_draft(campaign: Campaign) -> Campaign:
    """The campaign's row, locked, if it is still a draft; the lock keeps a send from
    starting halfway through the change."""
    locked = Campaign.objects.select_for_update().filter(pk=campaign.pk).first()
    if locked is None:
        raise Http404("campaign")
    if locked.status != CampaignStatus.DRAFT:
        raise CampaignError({"status": _not_draft(locked)})
    return locked


def _resend_targets_message() -> str:
    return _(
        "This campaign goes to those who did not receive the one it repeats; "
        "its lists and segments cannot be changed."
    )


def _not_draft(campaign: Campaign) -> str:
    if campaign.status == CampaignStatus.SCHEDULED:
        return _("The campaign is scheduled. Unschedule it to change it.")
    return _("Only a draft can be changed; this campaign is %(status)s.") % {
        "status": campaign.get_status_display().lower()
    }


@transaction.atomic
def campaign_update(*, campaign: Campaign, **changes: Any) -> Campaign:
    """Change a draft: any of EDITABLE. Target fields replace the targets of that kind
    and leave the others. Refused (CampaignError on ``status``) unless a draft."""
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise TypeError(f"campaign_update() got unknown fields: {', '.join(sorted(unknown))}")
    locked = _locked_draft(campaign)
    fields = {f: _clean(f, v) for f, v in changes.items() if f not in TARGET_FIELDS}
    target_changes = [f for f in TARGET_FIELDS if f in changes]
    if target_changes and locked.resend_of_id is not None:
        current = selectors.campaign_targets(campaign=locked)
        if any(tuple(changes[f]) != getattr(current, f) for f in target_changes):
            raise CampaignError({"targets": _resend_targets_message()})
    elif target_changes:
        current = selectors.campaign_targets(campaign=locked)
        wanted = Targets(
            *(tuple(changes[f]) if f in changes else getattr(current, f) for f in TARGET_FIELDS)
        )
        _targets_write(
            locked, targets_clean(account=locked.account, targets=wanted), only=target_changes
        )
    for field, value in fields.items():
        setattr(locked, field, value)
    locked.save(update_fields=[*fields, "updated_at"])
    # The caller's object follows, so it can be answered with at once.
    for field in ("status", "updated_at", *fields):
        setattr(campaign, field, getattr(locked, field))
    return campaign


@transaction.atomic
def campaign_delete(*, campaign: Campaign) -> None:
    """Delete a draft. Anything that went out stays, for its statistics and its record."""
    _locked_draft(campaign)
    Campaign.objects.filter(pk=campaign.pk, status=CampaignStatus.DRAFT).delete()


@transaction.atomic
def campaign_duplicate(*, campaign: Campaign, user: User | None = None) -> Campaign:
    """A new draft with the same content and targets, whatever state the original is in."""
    targets = selectors.campaign_targets(campaign=campaign)
    copy = Campaign.objects.create(
        account=campaign.account,
        created_by=user,
        name=(_("%(name)s (copy)") % {"name": campaign.name})[:NAME_MAX],
        **{f: getattr(campaign, f) for f in TEXT_FIELDS if f != "name"},
        tracking=campaign.tracking,
    )
    _targets_write(copy, targets, only=TARGET_FIELDS)
    return copy


def account_time(*, account: Account, moment: datetime) -> datetime:
    """A time without a zone is the account's wall-clock time; one with a zone is kept.
    (Sending and scheduling are the pipeline's: pipeline.campaign_start.)"""
    if timezone.is_aware(moment):
        return moment
    return moment.replace(tzinfo=zoneinfo.ZoneInfo(account.timezone))


# -- what blocks a send ------------------------------------------------------------------


def campaign_problems(*, campaign: Campaign) -> dict[str, str]:
    """Everything that stops the campaign from being sent, keyed by field: subject,
    preheader, html, text, from_email, reply_to, and ``targets`` (no list or segment,
    a segment that no longer fits its list, nobody to send to). Empty when it may be
    sent. Template problems are templating.template_check's, against the fields of the
    target lists."""
    problems: dict[str, str] = {}
    if not campaign.subject.strip():
        problems["subject"] = _("Write a subject.")
    if not campaign.html.strip():
        problems["html"] = _("Write the message (HTML).")
    problems.update(_sender_problems(campaign))
    problems.update(_target_problems(campaign))
    merge = selectors.campaign_merge_fields(campaign=campaign)
    found = template_check(
        subject=campaign.subject,
        preheader=campaign.preheader,
        html=campaign.html,
        text=campaign.text,
        field_names=merge.names,
    )
    for part, message in found.items():
        problems.setdefault(part, message)
    return problems


def _sender_problems(campaign: Campaign) -> dict[str, str]:
    problems: dict[str, str] = {}
    if campaign.reply_to:
        try:
            validate_email(campaign.reply_to)
        except ValidationError:
            problems["reply_to"] = _("The reply-to address is not a valid email address.")
    if not campaign.from_email:
        problems["from_email"] = _("Choose the sender address.")
        return problems
    domains = selectors.verified_domains(account=campaign.account)
    domain = campaign.from_email.rpartition("@")[2].lower()
    if domain not in domains:
        problems["from_email"] = _(
            "%(domain)s is not one of your verified sender domains (%(domains)s). "
            "Ask your account manager to verify it."
        ) % {"domain": domain, "domains": ", ".join(sorted(domains)) or _("none yet")}
    return problems


def _target_problems(campaign: Campaign) -> dict[str, str]:
    targets = list(campaign.targets.select_related("segment__list").filter(exclude=False))
    if not targets and campaign.resend_of_id is None:
        return {"targets": _("Choose at least one list or segment to send to.")}
    for target in targets:
        if target.segment is not None:
            problem = selectors.segment_problem_text(segment=target.segment)
            if problem:
                return {
                    "targets": _("The segment %(name)s no longer fits its list: %(problem)s")
                    % {"name": target.segment.name, "problem": problem}
                }
    if not selectors.campaign_recipients(campaign=campaign).exists():  # not a count: 2.5 s at 1M
        return {"targets": _("There is no one to send to: no active member is on the target.")}
    return {}


# -- sender domains ----------------------------------------------------------------------


def sender_domain_add(*, account: Account, domain: str, verified: bool = False) -> SenderDomain:
    """Add a domain the account may send from (verified by staff, never by the customer).
    Adding one the account already has returns it unchanged."""
    name = domain_normalize(domain)
    try:
        with transaction.atomic():
            return SenderDomain.objects.create(account=account, domain=name, verified=verified)
    except IntegrityError:
        return SenderDomain.objects.get(account=account, domain=name)


def sender_domain_verify(*, sender_domain: SenderDomain, verified: bool = True) -> SenderDomain:
    SenderDomain.objects.filter(pk=sender_domain.pk).update(verified=verified)
    sender_domain.verified = verified
    return sender_domain


def sender_domain_delete(*, sender_domain: SenderDomain) -> None:
    sender_domain.delete()
