"""The audit log: one append-only, hash-chained row per event.

``AuditEvent`` has no ForeignKey on purpose: ON DELETE SET NULL would be an UPDATE,
and a trigger (migration 0001) refuses every UPDATE, DELETE and TRUNCATE. Who and
what are kept as plain ids and copied text, so an event survives its subjects.

The chain. ``hash`` is SHA-256 (lower-case hex) of the canonical serialization of the
row, which includes ``prev_hash``, the ``hash`` of the row before (``seq - 1``); the
first row's ``prev_hash`` is 64 zeros. ``seq`` has no gaps: the database function
``audit_append`` (migration 0002), the only writer, hands it out under a
transaction-level advisory lock as the last ``seq`` + 1, so a rolled-back transaction
leaves no hole and a missing row is a deleted row.

The canonical serialization is, for each field in the order

    seq, at, actor_id, actor_email, actor_role, account_id, action, target_type,
    target_id, target_repr, path, method, status, ip, user_agent, grant_id, reason,
    extra, prev_hash

its PostgreSQL text form as ``<length in characters>:<text>;`` (``-;`` for NULL), all
concatenated and hashed as UTF-8. The text forms are those of ``::text`` for numbers,
``to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`` for the time,
``host(ip)`` for the address and ``extra::text`` (jsonb's normalized output) for the
extra data; text columns are taken as they are. ``audit_append`` computes it in SQL when
the row is written; ``audit.chain`` computes it in Python, and ``audit_verify``
recomputes it row by row from the same text forms.

The model is unmanaged (the table is created by migration 0001 by hand) so that
``flush`` leaves it alone; a consequence for tests: events written by transactional
tests stay in the table for the rest of the test session, so count events from a
known ``seq`` onwards or by account, never the whole table.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

GENESIS_HASH = "0" * 64


class AuditEvent(models.Model):
    seq = models.BigAutoField(_("sequence number"), primary_key=True)
    at = models.DateTimeField(_("time"))
    actor_id = models.IntegerField(_("actor id"), null=True, blank=True)
    actor_email = models.CharField(_("actor"), max_length=254, blank=True)
    # A Role value, or "anonymous" (not signed in) or "system" (a task or command).
    actor_role = models.CharField(_("role"), max_length=16)
    account_id = models.IntegerField(_("account id"), null=True, blank=True, db_index=True)
    action = models.CharField(_("action"), max_length=64)
    target_type = models.CharField(_("target type"), max_length=64, blank=True)
    target_id = models.CharField(_("target id"), max_length=64, blank=True)
    target_repr = models.CharField(_("target"), max_length=200, blank=True)
    path = models.CharField(_("path"), max_length=500, blank=True)
    method = models.CharField(_("method"), max_length=10, blank=True)
    status = models.SmallIntegerField(_("response status"), null=True, blank=True)
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    user_agent = models.CharField(_("user agent"), max_length=300, blank=True)
    grant_id = models.IntegerField(_("access grant"), null=True, blank=True)
    reason = models.TextField(_("reason"), blank=True)
    extra = models.JSONField(_("extra data"), default=dict, blank=True)
    prev_hash = models.CharField(_("previous hash"), max_length=64)
    hash = models.CharField(_("hash"), max_length=64)

    class Meta:
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
        ordering = ["-seq"]
        # The table, its indexes and triggers are made by hand in migration 0001: an
        # unmanaged table is left out of ``flush``, which would truncate it.
        managed = False

    def __str__(self) -> str:
        return f"#{self.seq} {self.action}"
