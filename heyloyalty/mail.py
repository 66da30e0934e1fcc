"""All outgoing mail is built here: text and HTML parts, a Message-ID, the sender."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.core.mail.message import make_msgid


def build_message(
    *,
    to: list[str],
    subject: str,
    text: str,
    html: str | None = None,
    from_email: str | None = None,
    reply_to: list[str] | None = None,
    headers: dict[str, str] | None = None,
) -> EmailMultiAlternatives:
    domain = (from_email or settings.DEFAULT_FROM_EMAIL).rsplit("@", 1)[-1].strip(">") or None
    message = EmailMultiAlternatives(
        subject=subject,
        body=text,
        from_email=from_email or settings.DEFAULT_FROM_EMAIL,
        to=to,
        reply_to=reply_to,
        headers={"Message-ID": make_msgid(domain=domain), **(headers or {})},
    )
    if html:
        message.attach_alternative(html, "text/html")
    return message
