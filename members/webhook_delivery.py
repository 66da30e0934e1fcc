"""Outbound webhooks: the events, their payload and signatures, and delivery.

1. Emitting. A service that changes members calls ``webhooks_emit`` inside its own
   transaction: one WebhookDelivery row per active webhook of the list that wants the
   event, holding the payload of heyloyalty-api.md §8 as the member is at that moment.
   Once the transaction commits, one task per webhook sends what is due. Bulk paths write
   their rows in batches: an import from a task of its own (``webhooks_emit_import``),
   'sent' from each batch of the sending pipeline (``SentEvents``), opens and clicks from
   each flush of the tracking buffer (``webhooks_emit_tracking``).
2. Knowing cheaply that nobody listens. Which lists of an account have webhooks for
   which events is kept in process memory for LOOKUP_SECONDS; a change made in this
   process is seen at once. So a list without webhooks costs its writers no query, and a
   webhook made in another process starts to receive events within that time.
3. Sending (``webhook_send``). A webhook's pending deliveries go out oldest first, one at
   a time, so a receiver sees a member's events in the order they happened. A worker
   claims a few at the head with a lease; a second worker finds the head claimed and
   leaves. A failed try puts the delivery's next try off (WEBHOOK_RETRY_DELAYS) and
   holds back the ones behind it; the beat job (``webhooks_due``) picks up every webhook
   whose head is due, and heads whose worker died. The delays live in the database, not
   in the broker, so a six-hour wait never outlives the broker's visibility timeout.
4. Giving up. After the last retry a delivery is ``failed``; after
   WEBHOOK_FAILURES_TO_DISABLE failed tries in a row the webhook is switched off and its
   owners are mailed, once. Its pending deliveries stay, and go out when it is switched on.
5. Where we connect. The host is resolved at send time and every address is checked
   (``members.webhooks.address_is_public``) before we connect to it; we connect to the
   address we checked, so a name that resolves to our own network, or is changed to,
   is refused. WEBHOOK_ALLOW_PRIVATE lifts this for development and tests. Redirects are
   never followed (a 3xx is a failure) and a whole request gets WEBHOOK_TIMEOUT_SECONDS.

Signatures (README, "Webhooks"): the body's ``signature`` is
``md5(member_id + list_id + type + secret)`` in hex, the value Heyloyalty's format has room
for; the ``X-Heyloyalty-Signature`` header, ``t=<unix time>,v1=<hex HMAC-SHA256 of
"<t>." + body under the secret>``, is the one a receiver should check.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import io
import ipaddress
import json
import socket
import ssl
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache, partial
from typing import Any, Protocol
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.db.models import F, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from heyloyalty import keys
from members.models import (
    Import,
    List,
    Member,
    MemberStatus,
    Webhook,
    WebhookDelivery,
    WebhookDeliveryStatus,
    WebhookEvent,
)
from members.schema import ListSchema
from members.serializers import member_json

LOOKUP_SECONDS = 5.0
CLAIM_SIZE = 10  # deliveries a worker takes from a webhook's head at a time
SEND_SECONDS = 20.0  # a send task works this long, then queues itself again
IMPORT_BATCH = 2000  # members per transaction when an import's events are written
EXCERPT_BYTES = 4096  # of a response body read; the first EXCERPT_CHARS are kept
EXCERPT_CHARS = 1000
PRUNE_BATCH = 10_000
USER_AGENT = "Heyloyalty-Webhooks/1.0"
PENDING = WebhookDeliveryStatus.PENDING
TRACKING_EVENTS = frozenset({WebhookEvent.OPEN.value, WebhookEvent.CLICK.value})

_clock = time.monotonic  # replaced by tests


# -- which lists listen -----------------------------------------------------------------


@dataclass(frozen=True)
class _Kept:
    lists: dict[int, frozenset[str]]  # list id -> the events its active webhooks want
    expires: float


_kept: dict[int, _Kept] = {}  # account id ->
# Which account a list or campaign belongs to never changes.
_list_accounts: dict[int, int] = {}
_campaign_accounts: dict[int, int] = {}


def _listening(account_id: int) -> dict[int, frozenset[str]]:
    now = _clock()
    kept = _kept.get(account_id)
    if kept is not None and kept.expires > now:
        return kept.lists
    found: dict[int, set[str]] = {}
    rows = Webhook.objects.filter(
        list__account_id=account_id, active=True, disabled_at__isnull=True
    ).values_list("list_id", "events")
    for list_id, events in rows:
        found.setdefault(list_id, set()).update(events)
    if len(_kept) >= 10_000:
        _kept.clear()  # a bound on memory; accounts in use are loaded again
    lists = {list_id: frozenset(events) for list_id, events in found.items()}
    _kept[account_id] = _Kept(lists, now + LOOKUP_SECONDS)
    return lists


def webhooks_changed(*, account_id: int) -> None:
    """Forget what this process knew of the account's webhooks (after any change)."""
    _kept.pop(account_id, None)


def webhook_lists(*, account_id: int, event: str) -> frozenset[int]:
    """The account's lists with an active webhook for ``event``; usually none. From
    memory (see the module's docstring), so cheap enough for every batch of a send."""
    return frozenset(lid for lid, events in _listening(account_id).items() if event in events)


def webhooks_wanted(*, member_list: List, event: str) -> bool:
    """Whether the list may have a webhook for the event (no query most of the time)."""
    _remember(member_list.pk, member_list.account_id)
    return event in _listening(member_list.account_id).get(member_list.pk, frozenset())


def _hook_ids(list_id: int, event: str) -> list[int]:
    """The list's webhooks that take the event now: the database's word, not memory's."""
    return list(
        Webhook.objects.filter(
            list_id=list_id, active=True, disabled_at__isnull=True, events__contains=[event]
        )
        .order_by("pk")
        .values_list("pk", flat=True)
    )


# -- payloads and signatures ------------------------------------------------------------


def member_payload(
    member: Member, schema: ListSchema, event: str, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The body of heyloyalty-api.md §8 without its signature (added when it is sent):
    the member's fields under ``member.fields`` (where WordPress's receiver reads the
    email), as the API shows them, password never."""
    shown = member_json(member, schema)
    return {
        "member_id": str(member.pk),
        "list_id": member.list_id,
        "type": event,
        "member": {
            "id": str(member.pk),
            "fields": {name: shown[name] for name in schema.fields},
            "status": shown["status"],
        },
        **(extra or {}),
    }


def md5_signature(*, member_id: str, list_id: int | str, event: str, secret: str) -> str:
    """The body's ``signature``: md5 over member id, list id, type and the webhook's
    secret, concatenated as text. Only as strong as MD5; the HMAC header is the check."""
    text = f"{member_id}{list_id}{event}{secret}"
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def hmac_header(*, body: bytes, secret: str, timestamp: int) -> str:
    """``X-Heyloyalty-Signature``: ``t=<timestamp>,v1=<hex HMAC-SHA256("<t>." + body)>``.
    The time inside the signed text lets a receiver refuse an old message replayed."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


_FIRST = ("member_id", "list_id", "type", "signature", "member", "campaign_id", "url")


def delivery_body(payload: Mapping[str, Any], secret: str) -> bytes:
    """The raw JSON sent: §8's keys first, in its order, then our additions."""
    signed = {
        **payload,
        "signature": md5_signature(
            member_id=str(payload.get("member_id", "")),
            list_id=payload.get("list_id", ""),
            event=str(payload.get("type", "")),
            secret=secret,
        ),
    }
    ordered = {key: signed[key] for key in _FIRST if key in signed}
    ordered.update((key, value) for key, value in signed.items() if key not in ordered)
    return json.dumps(ordered, ensure_ascii=False, separators=(",", ":")).encode()


def delivery_headers(delivery: WebhookDelivery, body: bytes, secret: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Heyloyalty-Event": delivery.event,
        "X-Heyloyalty-Delivery": str(delivery.pk),
        "X-Heyloyalty-Signature": hmac_header(body=body, secret=secret, timestamp=int(time.time())),
    }


# -- emitting ---------------------------------------------------------------------------


def webhooks_queue_send(webhook_ids: Iterable[int]) -> None:
    """After commit, one send task per webhook. A broker that is down loses nothing: the
    rows are committed and the beat job finds them."""
    from members.tasks import webhook_send

    for webhook_id in sorted(set(webhook_ids)):
        transaction.on_commit(partial(webhook_send.delay, webhook_id), robust=True)


def _write(rows: list[WebhookDelivery], *, ignore_conflicts: bool = False) -> int:
    if rows:
        WebhookDelivery.objects.bulk_create(
            rows, batch_size=IMPORT_BATCH, ignore_conflicts=ignore_conflicts
        )
        webhooks_queue_send(row.webhook_id for row in rows)
    return len(rows)


def webhooks_emit(
    *,
    member_list_id: int,
    event: str,
    members: Sequence[Member],
    extra: Mapping[str, Any] | None = None,
) -> int:
    """Write the event for each member of the list, one row per webhook that wants it,
    in the caller's transaction; sending is queued for after commit. Returns the rows.

    ``members`` are the list's members as they are now (their ``list`` loaded, as the
    services have it). No query when the list has no webhook for the event.
    """
    if not members:
        return 0
    if event not in _listening(_account_of(member_list_id, members[0])).get(
        member_list_id, frozenset()
    ):
        return 0
    hooks = _hook_ids(member_list_id, event)
    if not hooks:
        return 0
    schema = ListSchema.kept(members[0].list)
    rows = [
        WebhookDelivery(
            webhook_id=hook,
            event=event,
            member_id=member.pk,
            payload=member_payload(member, schema, event, extra),
        )
        for member in members
        for hook in hooks
    ]
    return _write(rows)


def _account_of(list_id: int, member: Member) -> int:
    """The list's account, from the member's loaded list or from memory; a query once
    per list and process otherwise."""
    if list_id not in _list_accounts:
        if Member.list.is_cached(member):
            _remember(list_id, member.list.account_id)
        else:
            found = List.objects.filter(pk=list_id).values_list("account_id", flat=True)
            _remember(list_id, found.get())
    return _list_accounts[list_id]


def _remember(list_id: int, account_id: int) -> None:
    if list_id not in _list_accounts and len(_list_accounts) >= 100_000:
        _list_accounts.clear()  # a bound on memory
    _list_accounts[list_id] = account_id


def webhooks_emit_many(
    *, event: str, members: Iterable[Member], extra: Mapping[str, Any] | None = None
) -> int:
    """``webhooks_emit`` for members of several lists (a bounce suppresses an address on
    every list of the account)."""
    by_list: dict[int, list[Member]] = {}
    for member in members:
        by_list.setdefault(member.list_id, []).append(member)
    return sum(
        webhooks_emit(member_list_id=list_id, event=event, members=group, extra=extra)
        for list_id, group in by_list.items()
    )


def webhooks_after_import(*, import_id: int, member_list: List, created_at: datetime) -> bool:
    """Called in an import's merge transaction: if the list has a subscribe webhook, queue
    the task that writes the new members' events (``webhooks_emit_import``)."""
    if not _hook_ids(member_list.pk, WebhookEvent.SUBSCRIBE):
        return False
    from members.tasks import webhooks_import_emit

    transaction.on_commit(
        partial(webhooks_import_emit.delay, import_id, created_at.isoformat()), robust=True
    )
    return True


def webhooks_emit_import(*, import_id: int, created_at: str) -> int:
    """Write the subscribe events of the members an import created, IMPORT_BATCH members
    per transaction, each batch queueing one send per webhook. The members are those the
    import inserted (its merge gives them all one created_at), less those still to confirm
    their address: they subscribe when they confirm (members.optin.optin_confirm). Safe to
    run twice: the rows carry the import as their ``origin``, unique per webhook and member."""
    job = Import.objects.select_related("list").filter(pk=import_id).first()
    if job is None:
        return 0
    hooks = _hook_ids(job.list_id, WebhookEvent.SUBSCRIBE)
    if not hooks:
        return 0
    schema = ListSchema.load(job.list)
    members = (
        Member.objects.filter(
            list_id=job.list_id, created_at=datetime.fromisoformat(created_at), imported=True
        )
        .exclude(status=MemberStatus.UNCONFIRMED)
        .select_related("list")
        .order_by()
    )
    origin = f"import:{job.pk}"
    written = 0
    batch: list[Member] = []
    for member in members.iterator(chunk_size=IMPORT_BATCH):
        batch.append(member)
        if len(batch) >= IMPORT_BATCH:
            written += _import_batch(batch, hooks, schema, origin)
            batch = []
    written += _import_batch(batch, hooks, schema, origin)
    return written


def _import_batch(batch: list[Member], hooks: list[int], schema: ListSchema, origin: str) -> int:
    event = WebhookEvent.SUBSCRIBE
    rows = [
        WebhookDelivery(
            webhook_id=hook,
            event=event,
            member_id=member.pk,
            origin=origin,
            payload=member_payload(member, schema, event),
        )
        for member in batch
        for hook in hooks
    ]
    with transaction.atomic():
        return _write(rows, ignore_conflicts=True)


class SentRow(Protocol):
    """What the sending pipeline knows of a message it has just handed over."""

    member_id: Any
    list_id: int | None
    member_email: str
    mobile: str
    data: dict[str, Any]
    status: str
    email_status: str


class SentEvents:
    """The 'sent' events of one turn of a campaign's send (campaigns/sending.py).

    Once per batch, ``batch_start`` reads from memory which of the account's lists have
    a 'sent' webhook; the pipeline appends a sent message's row to ``rows`` only when its
    list is in ``lists`` (almost always empty: a set lookup is the whole cost), and
    ``flush`` writes the batch's events with one INSERT.
    """

    def __init__(self, *, account_id: int, campaign_id: int) -> None:
        self.account_id = account_id
        self.campaign_id = campaign_id
        self.lists: frozenset[int] = frozenset()
        self.rows: list[SentRow] = []
        self._hooks: dict[int, list[int]] = {}
        self._schemas: dict[int, ListSchema] = {}

    def batch_start(self) -> None:
        self.lists = webhook_lists(account_id=self.account_id, event=WebhookEvent.SENT)

    def flush(self) -> int:
        rows, self.rows = self.rows, []
        out: list[WebhookDelivery] = []
        extra = {"campaign_id": self.campaign_id}
        for row in rows:
            if row.list_id is None:
                continue
            hooks, schema = self._for_list(row.list_id)
            member = Member(
                id=row.member_id,
                list=schema.member_list,
                email=row.member_email,
                mobile=row.mobile,
                data=row.data or {},
                status=row.status,
                email_status=row.email_status,
            )
            payload = member_payload(member, schema, WebhookEvent.SENT, extra)
            out.extend(
                WebhookDelivery(
                    webhook_id=hook, event=WebhookEvent.SENT, member_id=member.pk, payload=payload
                )
                for hook in hooks
            )
        return _write(out)

    def _for_list(self, list_id: int) -> tuple[list[int], ListSchema]:
        if list_id not in self._schemas:
            self._hooks[list_id] = _hook_ids(list_id, WebhookEvent.SENT)
            self._schemas[list_id] = ListSchema.load(List.objects.get(pk=list_id))
        return self._hooks[list_id], self._schemas[list_id]


def _accounts_of(campaign_ids: set[int]) -> dict[int, int]:
    from campaigns.models import Campaign

    missing = campaign_ids - _campaign_accounts.keys()
    if missing:
        if len(_campaign_accounts) >= 100_000:
            _campaign_accounts.clear()
        found = Campaign.objects.filter(pk__in=missing).values_list("pk", "account_id")
        _campaign_accounts.update(dict(found))
    return {cid: _campaign_accounts[cid] for cid in campaign_ids if cid in _campaign_accounts}


def webhooks_emit_tracking(events: Iterable[Mapping[str, Any]]) -> int:
    """Write 'open' and 'click' events from a flush of the tracking buffer.

    Each event is a mapping with ``delivery_id``, ``campaign_id``, ``member_id``, ``kind``
    ("open" or "click"), ``position`` (the link's, for a click) and ``created_at``; other
    kinds are ignored, and so is an event marked ``machine`` (a privacy proxy's prefetch
    or a link scanner is not the member acting). The payload adds ``campaign_id`` and, for
    a click, the link's ``url``. Costs a campaign lookup (once per process) and nothing
    more when no list of the campaigns' accounts has such a webhook.
    """
    wanted = [
        e
        for e in events
        if e.get("kind") in TRACKING_EVENTS and not e.get("machine") and e.get("member_id")
    ]
    if not wanted:
        return 0
    accounts = _accounts_of({int(e["campaign_id"]) for e in wanted})
    listening: dict[int, frozenset[str]] = {}
    for account_id in set(accounts.values()):
        listening.update(
            (lid, evs & TRACKING_EVENTS)
            for lid, evs in _listening(account_id).items()
            if evs & TRACKING_EVENTS
        )
    if not listening:
        return 0
    member_ids = {uuid.UUID(str(e["member_id"])) for e in wanted}
    members = {
        m.pk: m
        for m in Member.objects.filter(pk__in=member_ids, list_id__in=listening).select_related(
            "list"
        )
    }
    urls = _link_urls(wanted)
    by_list: dict[tuple[int, str], list[tuple[Member, dict[str, Any]]]] = {}
    for e in wanted:
        member = members.get(uuid.UUID(str(e["member_id"])))
        kind = str(e["kind"])
        if member is None or kind not in listening.get(member.list_id, frozenset()):
            continue
        extra: dict[str, Any] = {"campaign_id": int(e["campaign_id"])}
        if kind == WebhookEvent.CLICK:
            extra["url"] = urls.get((int(e["campaign_id"]), int(e.get("position") or 0)), "")
        by_list.setdefault((member.list_id, kind), []).append((member, extra))
    rows: list[WebhookDelivery] = []
    schemas: dict[int, ListSchema] = {}
    for (list_id, kind), items in by_list.items():
        hooks = _hook_ids(list_id, kind)
        if not hooks:
            continue
        if list_id not in schemas:
            schemas[list_id] = ListSchema.kept(items[0][0].list)
        for member, extra in items:
            payload = member_payload(member, schemas[list_id], kind, extra)
            rows.extend(
                WebhookDelivery(webhook_id=h, event=kind, member_id=member.pk, payload=payload)
                for h in hooks
            )
    return _write(rows)


def _link_urls(events: list[Mapping[str, Any]]) -> dict[tuple[int, int], str]:
    from campaigns.models import Link

    clicks = {
        (int(e["campaign_id"]), int(e.get("position") or 0))
        for e in events
        if e["kind"] == WebhookEvent.CLICK
    }
    if not clicks:
        return {}
    found = Link.objects.filter(
        campaign_id__in={c for c, _ in clicks}, position__in={p for _, p in clicks}
    ).values_list("campaign_id", "position", "url")
    return {(c, p): url for c, p, url in found}


# -- connecting -------------------------------------------------------------------------


class WebhookRefused(Exception):
    """The target resolves only to addresses we do not connect to."""


def resolve(host: str, port: int) -> list[tuple[socket.AddressFamily, tuple[Any, ...]]]:
    """The host's addresses (replaced by tests that need a name for 127.0.0.1)."""
    return [
        (family, sockaddr)
        for family, _, _, _, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    ]


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("no answer within the time limit")
    return left


def _open(host: str, port: int, deadline: float) -> socket.socket:
    """A socket connected to the first address of ``host`` that may be used: every
    address is checked before the connection, and the one checked is the one used."""
    from members.webhooks import address_is_public

    refused: list[str] = []
    error: OSError | None = None
    for family, sockaddr in resolve(host, port):
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if not settings.WEBHOOK_ALLOW_PRIVATE and not address_is_public(address):
            refused.append(str(address))
            continue
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(_left(deadline))
            sock.connect(sockaddr)
        except OSError as problem:
            sock.close()
            error = problem
            continue
        return sock
    if error is not None:
        raise error
    raise WebhookRefused(
        f"{host} resolves to {', '.join(refused) or 'no address'}: a private or local "
        "address, where webhooks are never sent"
    )


class _TimedSocket:
    """A connected socket whose every send and receive fits in one deadline per request,
    so a receiver that answers a byte at a time cannot hold a worker."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.deadline = 0.0

    def sendall(self, data: bytes) -> None:
        self.sock.settimeout(_left(self.deadline))
        self.sock.sendall(data)

    def recv_into(self, buffer: memoryview) -> int:
        self.sock.settimeout(_left(self.deadline))
        return self.sock.recv_into(buffer)

    def makefile(self, mode: str = "rb") -> io.BufferedReader:
        return io.BufferedReader(_Reader(self))

    def close(self) -> None:
        self.sock.close()


class _Reader(io.RawIOBase):
    def __init__(self, timed: _TimedSocket) -> None:
        self.timed = timed

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self.timed.recv_into(memoryview(buffer))


@lru_cache(maxsize=1)
def _tls() -> ssl.SSLContext:
    return ssl.create_default_context()


class _Connection(http.client.HTTPConnection):
    deadline = 0.0

    def connect(self) -> None:
        sock = self.wrap(_open(self.host, self.port, self.deadline))
        timed = _TimedSocket(sock)
        timed.deadline = self.deadline
        self.sock = timed

    def wrap(self, sock: socket.socket) -> socket.socket:
        return sock


class _TLSConnection(_Connection):
    default_port = 443

    def wrap(self, sock: socket.socket) -> socket.socket:
        try:
            return _tls().wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise


@dataclass(frozen=True)
class Outcome:
    status: int | None
    body: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def _clean(text: str) -> str:
    return text.replace("\x00", "")[:EXCERPT_CHARS]  # PostgreSQL text holds no NUL


# A reused keep-alive connection that the receiver has closed meanwhile fails like this
# before anything was read; the request is sent again on a new connection.
_STALE = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


class Client:
    """POSTs to webhook URLs, one kept-alive connection per origin for a run of sends."""

    def __init__(self) -> None:
        self.connections: dict[tuple[str, str, int | None], _Connection] = {}

    def close(self) -> None:
        for connection in self.connections.values():
            connection.close()
        self.connections.clear()

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Outcome:
        deadline = time.monotonic() + settings.WEBHOOK_TIMEOUT_SECONDS
        try:
            return self._post(url, body, headers, deadline)
        except WebhookRefused as refused:
            return Outcome(None, error=str(refused))
        except TimeoutError:
            return Outcome(
                None, error=f"no answer within {settings.WEBHOOK_TIMEOUT_SECONDS} seconds"
            )
        except ssl.SSLError as problem:
            return Outcome(None, error=f"TLS failed: {problem}")
        except OSError as problem:
            return Outcome(None, error=f"could not connect: {problem.strerror or problem}")
        except http.client.HTTPException as problem:
            return Outcome(None, error=f"not an HTTP answer: {problem!r}"[:EXCERPT_CHARS])

    def _post(self, url: str, body: bytes, headers: Mapping[str, str], deadline: float) -> Outcome:
        parts = urlsplit(url)
        key = (parts.scheme, parts.hostname or "", parts.port)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection = self.connections.get(key)
        reused = connection is not None and connection.sock is not None
        if connection is None:
            kind = _TLSConnection if parts.scheme == "https" else _Connection
            connection = self.connections[key] = kind(parts.hostname or "", parts.port)
        try:
            try:
                return _exchange(connection, path, body, headers, deadline)
            except _STALE:
                if not reused:
                    raise
                connection.close()
                return _exchange(connection, path, body, headers, deadline)
        except BaseException:
            connection.close()  # in an unknown state: the next request starts afresh
            raise


def _exchange(
    connection: _Connection, path: str, body: bytes, headers: Mapping[str, str], deadline: float
) -> Outcome:
    connection.deadline = deadline
    if isinstance(connection.sock, _TimedSocket):
        connection.sock.deadline = deadline
    connection.request("POST", path, body=body, headers=dict(headers))
    response = connection.getresponse()
    excerpt = response.read(EXCERPT_BYTES)
    if not response.isclosed():
        connection.close()  # more than we read: this connection cannot carry another
    text = _clean(excerpt.decode("utf-8", errors="replace"))
    status = response.status
    if 300 <= status < 400:
        where = response.getheader("Location") or "elsewhere"
        error = f"HTTP {status}: a redirect to {where}, which webhooks do not follow"
        return Outcome(status, text, _clean(error))
    if not 200 <= status < 300:
        return Outcome(status, text, f"HTTP {status}")
    return Outcome(status, text)


# -- sending ----------------------------------------------------------------------------


def _lease() -> timedelta:
    """Longer than a worker can take over the deliveries it claimed at once."""
    return timedelta(seconds=CLAIM_SIZE * settings.WEBHOOK_TIMEOUT_SECONDS + 60)


def _claim(webhook_id: int) -> tuple[Webhook, list[WebhookDelivery]] | None:
    """The webhook and up to CLAIM_SIZE deliveries from its head, if the head is due and
    nobody holds it. The webhook's row is locked while we look, so two workers cannot
    both take the head (FOR NO KEY UPDATE: writers of new deliveries are not held up)."""
    now = timezone.now()
    with transaction.atomic():
        webhook = (
            Webhook.objects.select_for_update(no_key=True)
            .filter(pk=webhook_id, active=True, disabled_at__isnull=True)
            .first()
        )
        if webhook is None:
            return None
        head = WebhookDelivery.objects.filter(webhook_id=webhook_id, status=PENDING).order_by("id")
        taken = []
        for pk, due, claimed in head.values_list("pk", "next_attempt_at", "claimed_until")[
            :CLAIM_SIZE
        ]:
            if due > now or (claimed is not None and claimed > now):
                break  # order is kept: nothing behind a waiting or held delivery goes first
            taken.append(pk)
        if not taken:
            return None
        WebhookDelivery.objects.filter(pk__in=taken).update(claimed_until=now + _lease())
    return webhook, list(WebhookDelivery.objects.filter(pk__in=taken).order_by("id"))


def _release(deliveries: Sequence[WebhookDelivery]) -> None:
    WebhookDelivery.objects.filter(pk__in=[d.pk for d in deliveries], status=PENDING).update(
        claimed_until=None
    )


def webhook_send(*, webhook_id: int) -> bool:
    """Send the webhook's due deliveries, oldest first, for about SEND_SECONDS; stop at
    the first failure (the rest wait behind it). True when more are due now, for the
    task to queue itself again."""
    stop = time.monotonic() + SEND_SECONDS
    client = Client()
    try:
        while time.monotonic() < stop:
            claimed = _claim(webhook_id)
            if claimed is None:
                return False
            webhook, batch = claimed
            secret = keys.decrypt(webhook.secret_encrypted)
            for index, delivery in enumerate(batch):
                try:
                    delivered = _attempt(client, webhook, secret, delivery)
                except BaseException:
                    with contextlib.suppress(Exception):
                        _release(batch[index:])
                    raise
                if not delivered:
                    _release(batch[index + 1 :])
                    return False
    finally:
        client.close()
    return _head_due(webhook_id)


def _attempt(client: Client, webhook: Webhook, secret: str, delivery: WebhookDelivery) -> bool:
    """One try of one delivery, recorded; True when the receiver took it."""
    body = delivery_body(delivery.payload, secret)
    started = time.monotonic()
    outcome = client.post(webhook.url, body, delivery_headers(delivery, body, secret))
    now = timezone.now()
    result: dict[str, Any] = {
        "attempts": F("attempts") + 1,
        "claimed_until": None,
        "response_status": outcome.status,
        "response_body": outcome.body,
        "error": outcome.error,
        "duration_ms": int((time.monotonic() - started) * 1000),
    }
    rows = WebhookDelivery.objects.filter(pk=delivery.pk, status=PENDING)
    if outcome.ok:
        rows.update(status=WebhookDeliveryStatus.DELIVERED, delivered_at=now, **result)
        Webhook.objects.filter(pk=webhook.pk, failures_in_row__gt=0).update(failures_in_row=0)
        return True
    delays = settings.WEBHOOK_RETRY_DELAYS
    tries = delivery.attempts + 1
    if tries > len(delays):
        rows.update(status=WebhookDeliveryStatus.FAILED, **result)
    else:
        rows.update(next_attempt_at=now + timedelta(seconds=delays[tries - 1]), **result)
    _failed(webhook, outcome)
    return False


def _failed(webhook: Webhook, outcome: Outcome) -> None:
    Webhook.objects.filter(pk=webhook.pk).update(failures_in_row=F("failures_in_row") + 1)
    failures = Webhook.objects.filter(pk=webhook.pk).values_list("failures_in_row", flat=True)
    count = failures.first() or 0
    limit = settings.WEBHOOK_FAILURES_TO_DISABLE
    if count >= limit:
        answer = f" ({outcome.body[:200]})" if outcome.body else ""
        webhook_disable(
            webhook=webhook,
            reason=f"{count} tries in a row failed. The last: {outcome.error}{answer}",
        )


@transaction.atomic
def webhook_disable(*, webhook: Webhook, reason: str) -> bool:
    """Switch the webhook off for failing, and tell its owners once: the conditional
    update lets one caller through. Its pending deliveries stay for when it is on again."""
    now = timezone.now()
    switched = Webhook.objects.filter(pk=webhook.pk, disabled_at__isnull=True).update(
        active=False, disabled_at=now, disabled_reason=reason, updated_at=now
    )
    if not switched:
        return False
    from members.tasks import webhook_disabled_notice

    account = List.objects.filter(pk=webhook.list_id).values_list("account_id", flat=True)
    webhooks_changed(account_id=account.get())
    transaction.on_commit(partial(webhook_disabled_notice.delay, webhook.pk), robust=True)
    return True


def webhook_resume(*, webhook: Webhook) -> int:
    """A webhook switched on again: its pending deliveries are due now (a failed head
    may wait hours otherwise), and the sending is queued. Returns how many wait."""
    waiting = WebhookDelivery.objects.filter(webhook=webhook, status=PENDING).update(
        next_attempt_at=timezone.now(), claimed_until=None
    )
    if waiting:
        webhooks_queue_send([webhook.pk])
    return waiting


def _head(webhook: OuterRef, column: str) -> Subquery:
    pending = WebhookDelivery.objects.filter(webhook=webhook, status=PENDING).order_by("id")
    return Subquery(pending.values(column)[:1])


def _due_webhooks(now: datetime) -> QuerySet[Webhook]:
    return (
        Webhook.objects.filter(active=True, disabled_at__isnull=True)
        .annotate(
            head_at=_head(OuterRef("pk"), "next_attempt_at"),
            head_claimed=_head(OuterRef("pk"), "claimed_until"),
        )
        .filter(head_at__lte=now)
        .filter(Q(head_claimed__isnull=True) | Q(head_claimed__lte=now))
    )


def _head_due(webhook_id: int) -> bool:
    return _due_webhooks(timezone.now()).filter(pk=webhook_id).exists()


def webhooks_due() -> int:
    """The beat job: queue a send for every webhook whose oldest pending delivery is due
    and free (a retry whose time has come, or one whose worker died). Returns how many."""
    from members.tasks import webhook_send as task

    due = list(_due_webhooks(timezone.now()).values_list("pk", flat=True))
    for webhook_id in due:
        task.delay(webhook_id)
    return len(due)


def webhooks_prune() -> int:
    """Delete delivered and failed deliveries older than WEBHOOK_LOG_DAYS, in batches."""
    cutoff = timezone.now() - timedelta(days=settings.WEBHOOK_LOG_DAYS)
    old = WebhookDelivery.objects.filter(created_at__lt=cutoff).exclude(status=PENDING)
    deleted = 0
    while ids := list(old.values_list("pk", flat=True)[:PRUNE_BATCH]):
        deleted += WebhookDelivery.objects.filter(pk__in=ids).delete()[0]
    return deleted


def webhook_disabled_notify(*, webhook_id: int) -> bool:
    """Mail the account's owners and the webhook's contact address that the webhook was
    switched off, and why. False when it is on again by now."""
    from django.urls import reverse

    from accounts.models import Role, User
    from heyloyalty.mail import build_message

    webhook = Webhook.objects.select_related("list").filter(pk=webhook_id).first()
    if webhook is None or webhook.disabled_at is None:
        return False
    owners = User.objects.filter(
        account_id=webhook.list.account_id, role=Role.OWNER, is_active=True
    ).values_list("email", flat=True)
    recipients = sorted({*owners, *([webhook.contact_email] if webhook.contact_email else [])})
    if not recipients:
        return False
    url = settings.PUBLIC_URL + reverse(
        "members:webhook_detail", args=[webhook.list_id, webhook.pk]
    )
    waiting = WebhookDelivery.objects.filter(webhook=webhook, status=PENDING).count()
    text = (
        f"The webhook to {webhook.url} on the list “{webhook.list.name}” has been switched "
        f"off.\n\n{webhook.disabled_reason}\n\n"
        f"{waiting} events wait for it and nothing has been thrown away. When the receiver "
        "works again, switch the webhook on (in the dashboard, or PUT active=1 through the "
        "API) and they are sent in order; any delivery in the log can be sent again.\n\n"
        f"{url}\n"
    )
    build_message(
        to=recipients, subject=f"Webhook switched off: {webhook.list.name}", text=text
    ).send()
    return True


# -- the log ----------------------------------------------------------------------------


def webhook_deliveries(*, webhook: Webhook, status: str | None = None) -> QuerySet[WebhookDelivery]:
    """A webhook's log, newest first (the webhook was found through the account)."""
    found = WebhookDelivery.objects.filter(webhook=webhook)
    if status:
        found = found.filter(status=status)
    return found.order_by("-id")


def webhook_delivery_get(*, webhook: Webhook, delivery_id: int | str) -> WebhookDelivery:
    """One delivery of the webhook; another webhook's (or account's) id is a 404."""
    from django.http import Http404

    try:
        return WebhookDelivery.objects.select_related("webhook").get(
            webhook=webhook, pk=int(delivery_id)
        )
    except (WebhookDelivery.DoesNotExist, ValueError, TypeError):
        raise Http404("delivery") from None


def webhooks_recent_deliveries(
    *, webhooks: Sequence[Webhook], per_webhook: int
) -> dict[int, list[WebhookDelivery]]:
    """The newest deliveries of each webhook, in one query (the dashboard's overview)."""
    from django.db.models import Window
    from django.db.models.functions import RowNumber

    rank = Window(RowNumber(), partition_by=F("webhook_id"), order_by=F("id").desc())
    found = (
        WebhookDelivery.objects.filter(webhook__in=webhooks)
        .annotate(rank=rank)
        .filter(rank__lte=per_webhook)
        .order_by("webhook_id", "-id")
    )
    out: dict[int, list[WebhookDelivery]] = {w.pk: [] for w in webhooks}
    for delivery in found:
        out[delivery.webhook_id].append(delivery)
    return out
