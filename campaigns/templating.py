"""The customer's template language: merge tags, and nothing else.

A tag names a member field (or a built-in) and may carry a fallback for members with no
value::

    Hej {{ firstname | default: "ven" }}, your address is {{email}}.

That is the whole language, and so a sandbox: a tag can only read the value the sending
pipeline hands in for that field name; there is no attribute access, no filter, no code.
Built-in tags: ``email`` (read from ``values["email"]``) and ``unsubscribe_url``.

Compiling (once per campaign per worker) does all the work: it parses the four parts,
rewrites tracked links, places the preheader and the open pixel, generates the text part
from the HTML when the campaign has none, and splits every part into literal chunks and
numbered slots. Rendering a recipient then fills a small table of values (the member's
fields, HTML-escaped once each, and the recipient's click and open URLs) and joins.

Tracking: every ``<a href="http(s)://…">`` whose URL holds no merge tag gets a position,
in document order, and its href becomes ``{PUBLIC_URL}/c/{click_token}``. The same URL
appearing twice gets two positions: a logo and a button that lead to the same page are two
links to the reader of the statistics, which can still add them up by URL. URLs longer
than a Link row holds (2,000 characters) and links past the 65,536th stay untracked.
"""

from __future__ import annotations

import difflib
import re
import struct
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from hashlib import sha256
from html import escape, unescape
from typing import Any

from django.conf import settings

from campaigns import tokens
from campaigns.html_text import WIDTH, html_to_text, rule
from campaigns.message import SOFT_BREAK, encoded_body, qp_careful, qp_fragment

PARTS = ("subject", "preheader", "html", "text")
BUILTINS = frozenset({"email", "unsubscribe_url"})
MAX_LINKS = 0xFFFF + 1  # a click token carries the position in two bytes
MAX_URL = 2000  # Link.url

_TAG = re.compile(
    r"""\{\{\s*([A-Za-z0-9_-]+)\s*(?:\|\s*default\s*:\s*(?:"([^"]*)"|'([^']*)')\s*)?\}\}"""
)
_NAME = re.compile(r"[A-Za-z0-9_-]+")

# Slot markers: Unicode noncharacters, which no real text contains (any in the input are
# dropped), so a marker survives link rewriting and the text converter untouched.
_OPEN, _CLOSE, _PAD = "\ufdd0", "\ufdd1", "\ufdd2"
_MARKER = re.compile("\ufdd0(-?\\d+)\ufdd1")
_NONCHARACTERS = dict.fromkeys(map(ord, _OPEN + _CLOSE + _PAD))

_A_TAG = re.compile(r"""<a(?=[\s/>])(?:[^>"']|"[^"]*"|'[^']*')*>""", re.IGNORECASE)
_HREF = re.compile(r"""(\shref\s*=\s*)(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+))""", re.IGNORECASE)
_BODY_OPEN = re.compile(r"""<body(?=[\s/>])(?:[^>"']|"[^"]*"|'[^']*')*>""", re.IGNORECASE)
_BODY_CLOSE = re.compile(r"</body\s*>", re.IGNORECASE)
_TRACKABLE = re.compile(r"https?://\S", re.IGNORECASE)

PREHEADER_STYLE = (
    "display:none;font-size:1px;line-height:1px;max-height:0;max-width:0;opacity:0;"
    "overflow:hidden;mso-hide:all"
)
# The length of a click token (22 bytes in URL-safe base64), for wrapping the text part
# and for encoding click URLs without a look at them.
_TOKEN_CHARS = 30


class TemplateError(ValueError):
    """A part of the campaign that does not parse, or names an unknown tag."""

    def __init__(self, part: str, message: str) -> None:
        super().__init__(f"{part}: {message}")
        self.part = part
        self.message = message

    def __reduce__(self) -> tuple[type[TemplateError], tuple[str, str]]:
        return (TemplateError, (self.part, self.message))


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    html: str
    text: str


@dataclass(frozen=True)
class _Tag:
    name: str
    fallback: str | None  # the tag's own default, None when it has none


Segment = str | _Tag


def template_check(
    *, subject: str, preheader: str, html: str, text: str, field_names: Collection[str]
) -> dict[str, str]:
    """Every problem, keyed by part; {} when all parse and use only known tags."""
    known = BUILTINS | set(field_names)
    problems: dict[str, str] = {}
    for part, source in zip(PARTS, (subject, preheader, html, text), strict=True):
        _, found = _parse(source, known)
        if found:
            problems[part] = "; ".join(found)
    return problems


def compile_campaign(
    *,
    subject: str,
    preheader: str,
    html: str,
    text: str,
    field_names: Collection[str],
    fallbacks: Mapping[str, str],
    tracking: bool,
) -> CompiledCampaign:
    """Raises TemplateError for the first problem. Done once per campaign per worker."""
    known = BUILTINS | set(field_names)
    parsed: dict[str, list[Segment]] = {}
    for part, source in zip(PARTS, (subject, preheader, html, text), strict=True):
        segments, problems = _parse(source, known)
        if problems:
            raise TemplateError(part, problems[0])
        parsed[part] = segments
    compiler = _Compiler(fallbacks=fallbacks, tracking=tracking)
    return compiler.build(parsed, generate_text=not text.strip())


# Parsing


def _parse(source: str, known: Collection[str]) -> tuple[list[Segment], list[str]]:
    """The template as literal strings and tags, and a sentence for each problem."""
    segments: list[Segment] = []
    problems: list[str] = []
    position = 0
    line, counted = 1, 0  # the line number at `counted`, kept up as the scan goes on
    while (start := source.find("{{", position)) >= 0:
        if start > position:
            segments.append(source[position:start])
        line += source.count("\n", counted, start)
        counted = start
        match = _TAG.match(source, start)
        if match is None:
            problem, position = _diagnose(source, start, line)
            problems.append(problem)
            if position < 0:
                return segments, problems
            continue
        name = match[1]
        fallback = match[2] if match[2] is not None else match[3]
        if name not in known:
            problems.append(_unknown(name, line, known))
        segments.append(_Tag(name, fallback))
        position = match.end()
    if position < len(source):
        segments.append(source[position:])
    return segments, problems


def _diagnose(source: str, start: int, line: int) -> tuple[str, int]:
    """Why the tag at `start` does not parse, and where to go on (-1: nowhere)."""
    end = source.find("}}", start + 2)
    if end < 0:
        opening = _quote(source[start : start + 40].split("\n", 1)[0])
        return f'{opening} is not closed with "}}}}" (line {line})', -1
    written = _quote(source[start : end + 2])
    inner = source[start + 2 : end].strip()
    if not inner:
        return f"empty tag {written} (line {line})", end + 2
    name = inner.partition("|")[0].strip()
    if not _NAME.fullmatch(name):
        return (
            f"bad tag {written} (line {line}): a tag is a field name, such as "
            '"{{ firstname }}"',
            end + 2,
        )
    example = f'{{{{ {name} | default: "text" }}}}'
    return f"bad fallback in {written} (line {line}): write {example}", end + 2


def _unknown(name: str, line: int, known: Collection[str]) -> str:
    message = f'unknown tag "{name}" (line {line})'
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f'{message}; did you mean "{close[0]}"?' if close else message


def _quote(written: str) -> str:
    return f'"{written[:60]}…"' if len(written) > 60 else f'"{written}"'


# Compiling


class _Signer:
    """Click and open tokens, byte for byte those of campaigns.tokens, at a fraction of
    the cost: the HMAC's key schedule (and the token kind, and for a recipient's clicks
    the delivery id) is hashed once instead of once per token; a worker makes six tokens
    per message. A compiled campaign checks it against campaigns.tokens and uses those
    functions instead if the two ever disagree."""

    _id = struct.Struct(">Q").pack
    _position = struct.Struct(">H").pack

    def __init__(self) -> None:
        key = sha256(b"heyloyalty.campaigns.tokens" + settings.SECRET_KEY.encode()).digest()
        block = key.ljust(64, b"\0")
        inner = sha256(bytes(b ^ 0x36 for b in block))
        self._outer = sha256(bytes(b ^ 0x5C for b in block))
        self._inner_click, self._inner_open = inner.copy(), inner.copy()
        self._inner_click.update(tokens.CLICK)
        self._inner_open.update(tokens.OPEN)

    def _finish(self, inner: Any, payload: bytes) -> str:
        outer = self._outer.copy()
        outer.update(inner.digest())
        raw = payload + outer.digest()[: tokens.SIG_BYTES]
        return tokens.encode(raw)

    def clicks(self, delivery_id: int, count: int) -> list[str]:
        """The click tokens of positions 0 to count - 1."""
        head = self._id(delivery_id)
        started = self._inner_click.copy()
        started.update(head)
        out = []
        for position in range(count):
            tail = self._position(position)
            inner = started.copy()
            inner.update(tail)
            out.append(self._finish(inner, head + tail))
        return out

    def open(self, delivery_id: int) -> str:
        payload = self._id(delivery_id)
        inner = self._inner_open.copy()
        inner.update(payload)
        return self._finish(inner, payload)

    def agrees(self) -> bool:
        probe = 0x0123456789ABCDEF
        return self.clicks(probe, 8) == _clicks(probe, 8) and self.open(probe) == tokens.open_token(
            probe
        )


def _clicks(delivery_id: int, count: int) -> list[str]:
    return [tokens.click_token(delivery_id, position) for position in range(count)]


# The fixed entries of the render-time value table (see _Layout for the rest).
_UNSUBSCRIBE_RAW, _UNSUBSCRIBE_HTML, _PIXEL, _FIXED = 0, 1, 2, 3
_RULE_BASE = 1 << 40  # markers of heading rules, which follow the links in the table


@dataclass(frozen=True)
class _Part:
    """A part split for rendering: literal chunks at even indexes, slots at odd ones."""

    chunks: tuple[str, ...]  # literals, with "" where a slot goes
    slots: tuple[tuple[int, int], ...]  # (index in chunks, entry in the value table)
    # The chunks as quoted-printable, encoded once: a soft line break on either side of
    # every slot lets each piece start a line, so a value is encoded on its own.
    encoded: tuple[bytes, ...]

    def fill(self, table: list[str]) -> str:
        out = list(self.chunks)
        for at, entry in self.slots:
            out[at] = table[entry]
        return "".join(out)

    def fill_encoded(self, encoded: list[bytes]) -> bytes:
        out = list(self.encoded)
        for at, entry in self.slots:
            out[at] = encoded[entry]
        return b"".join(out)


class _Compiler:
    def __init__(self, *, fallbacks: Mapping[str, str], tracking: bool) -> None:
        self.fallbacks = fallbacks
        self.tracking = tracking
        self.base = settings.PUBLIC_URL.rstrip("/")
        self.keys: dict[tuple[str, str], int] = {}  # (name, fallback) -> table entry (raw)
        self.links: list[str] = []  # tracked URLs by position
        self.written: list[str] = []  # their href as written, HTML-encoded
        # Rules under headings with merge tags: character, and per line of the heading its
        # literal length and the markers of its values.
        self.rules: list[tuple[str, list[tuple[int, list[int]]]]] = []

    def build(self, parsed: dict[str, list[Segment]], *, generate_text: bool) -> CompiledCampaign:
        html = self._mark(parsed["html"], escape_literals=False)
        if self.tracking:
            html = _A_TAG.sub(self._track_link, html)
        if generate_text:
            text = self._generated_text(html)
        else:
            text = self._mark(parsed["text"], escape_literals=False)
        preheader = self._mark(parsed["preheader"], escape_literals=True)
        if preheader.strip():
            html = _insert_after_body(html, f'<div style="{PREHEADER_STYLE}">{preheader}</div>')
        if self.tracking:
            html = _insert_before_body_end(html, self._marker(_PIXEL))
        subject = self._mark(parsed["subject"], escape_literals=False)
        layout = _Layout(tags=len(self.keys), links=len(self.links))
        return CompiledCampaign(
            links=list(self.links),
            written=list(self.written),
            keys=tuple(self.keys),  # dicts keep insertion order: entry 3, 5, 7, …
            rules=tuple(
                (
                    char,
                    tuple((length, tuple(map(layout.text, markers))) for length, markers in lines),
                )
                for char, lines in self.rules
            ),
            subject=_split(subject, layout.text),
            html=_split(html, layout.html),
            text=_split(text, layout.text),
            tracking=self.tracking,
            base=self.base,
        )

    def _marker(self, entry: int) -> str:
        return f"{_OPEN}{entry}{_CLOSE}"

    def _mark(self, segments: list[Segment], *, escape_literals: bool) -> str:
        """The part as one string, each tag replaced by the marker of its raw value (a
        part's own context decides later whether the value is escaped)."""
        out: list[str] = []
        for segment in segments:
            if isinstance(segment, str):
                literal = segment.translate(_NONCHARACTERS)
                out.append(escape(literal) if escape_literals else literal)
            elif segment.name == "unsubscribe_url":
                out.append(self._marker(_UNSUBSCRIBE_RAW))
            else:
                fallback = segment.fallback
                if fallback is None:
                    fallback = self.fallbacks.get(segment.name) or ""
                key = (segment.name, fallback)
                if key not in self.keys:
                    self.keys[key] = _FIXED + 2 * len(self.keys)
                out.append(self._marker(self.keys[key]))
        return "".join(out)

    def _track_link(self, match: re.Match[str]) -> str:
        tag = match[0]
        href = _HREF.search(tag)
        if href is None:
            return tag
        written = next(value for value in href.groups()[1:] if value is not None)
        url = unescape(written).strip()
        if (
            _OPEN in written
            or not _TRACKABLE.match(url)
            or len(url) > MAX_URL
            or len(self.links) >= MAX_LINKS
        ):
            return tag
        position = len(self.links)
        self.links.append(url)
        self.written.append(written.replace('"', "&quot;"))
        marker = self._marker(-1 - position)  # link markers are negative until _split
        return f'{tag[: href.start()]}{href[1]}"{marker}"{tag[href.end() :]}'

    def _generated_text(self, html: str) -> str:
        """The text part from the marked HTML. Each marker is padded to the width its
        value is likely to have, so paragraphs wrap about where they will end up."""
        click_width = len(self.base) + 3 + _TOKEN_CHARS

        def padded(match: re.Match[str]) -> str:
            entry = int(match[1])
            if entry < 0:
                width = click_width
            elif entry == _UNSUBSCRIBE_RAW:
                width = click_width + 18  # its token is 48 characters
            else:
                name, fallback = next(k for k, v in self.keys.items() if v == entry)
                width = max(len(fallback), 20 if name == "email" else 8)
            return match[0] + _PAD * max(0, width - len(match[0]))

        def resolve(href: str) -> str:
            found = _MARKER.fullmatch(href.replace(_PAD, ""))
            if found and int(found[1]) < 0:
                return self.links[-1 - int(found[1])]
            return href

        def underline(heading: list[str], char: str) -> str:
            lines = [line.replace(_PAD, "") for line in heading]
            if not any(_OPEN in line for line in lines):
                return rule(lines, char)
            # A heading with merge tags: its rule is measured per recipient.
            parts = [
                (len(_MARKER.sub("", line)), [int(m) for m in _MARKER.findall(line)])
                for line in lines
            ]
            self.rules.append((char, parts))
            return self._marker(_RULE_BASE + len(self.rules) - 1)

        text = html_to_text(
            _MARKER.sub(padded, html.replace(_PAD, "")), resolve=resolve, underline=underline
        )
        return text.replace(_PAD, "")


def _insert_after_body(html: str, element: str) -> str:
    body = _BODY_OPEN.search(html)
    at = body.end() if body else 0
    return html[:at] + element + html[at:]


def _insert_before_body_end(html: str, element: str) -> str:
    ends = list(_BODY_CLOSE.finditer(html))
    at = ends[-1].start() if ends else len(html)
    return html[:at] + element + html[at:]


def _split(marked: str, entry: Callable[[int], int]) -> _Part:
    """Literal chunks and (chunk index, table entry) slots."""
    pieces = _MARKER.split(marked)  # literal, marker, literal, …, literal
    slots: list[tuple[int, int]] = []
    for at in range(1, len(pieces), 2):
        slots.append((at, entry(int(pieces[at]))))
        pieces[at] = ""
    return _Part(tuple(pieces), tuple(slots), _encode_literals(pieces))


class _Layout:
    """Where each marker's value sits in the render-time table: the fixed entries, two
    per distinct tag (raw, escaped), two per link (HTML form, text form), one per rule."""

    def __init__(self, *, tags: int, links: int) -> None:
        self.links = _FIXED + 2 * tags
        self.rules = self.links + 2 * links

    def entry(self, marker: int, *, html: bool) -> int:
        if marker >= _RULE_BASE:
            return self.rules + marker - _RULE_BASE
        if marker < 0:  # a link
            return self.links + 2 * (-1 - marker) + (0 if html else 1)
        if marker == _UNSUBSCRIBE_RAW:
            return _UNSUBSCRIBE_HTML if html else _UNSUBSCRIBE_RAW
        if marker >= _FIXED and html:
            return marker + 1
        return marker

    def html(self, marker: int) -> int:
        return self.entry(marker, html=True)

    def text(self, marker: int) -> int:
        return self.entry(marker, html=False)


def _encode_literals(pieces: list[str]) -> tuple[bytes, ...]:
    encoded: list[bytes] = []
    last = len(pieces) - 1
    for at, piece in enumerate(pieces):
        if at % 2:
            encoded.append(b"")
            continue
        text = piece.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n")
        chunk = qp_careful(text.encode("utf-8"))
        if at and chunk:
            chunk = SOFT_BREAK + chunk
        elif at and at != last:
            chunk = SOFT_BREAK  # between two slots
        if at != last and chunk and not chunk.endswith(b"\r\n"):
            chunk += SOFT_BREAK
        encoded.append(chunk)
    return tuple(encoded)


class CompiledCampaign:
    """A campaign ready to render for each recipient. Build it with compile_campaign."""

    links: list[str]  # the tracked URLs, index = position (empty when tracking is off)

    # Distinct member values remembered with their escaped and encoded forms: most
    # recipients share a fallback, a first name or a city with someone before them.
    VALUE_CACHE = 20_000

    def __init__(
        self,
        *,
        links: list[str],
        written: list[str],
        keys: tuple[tuple[str, str], ...],
        rules: tuple[tuple[str, tuple[tuple[int, tuple[int, ...]], ...]], ...],
        subject: _Part,
        html: _Part,
        text: _Part,
        tracking: bool,
        base: str,
    ) -> None:
        self.links = links
        self._subject, self._html, self._text = subject, html, text
        self._tracking = tracking
        self._values: dict[str, tuple[str, bytes, bytes]] = {}
        self._rules = rules
        self._rules_encoded: dict[str, bytes] = {}
        # Per tag: name, then the fallback's four table entries.
        self._keys = [
            (name, fallback, escape(fallback), qp_fragment(fallback), qp_fragment(escape(fallback)))
            for name, fallback in keys
        ]
        # The links as the customer wrote them (previews, test sends): the HTML keeps the
        # href as written, the text part shows the URL it means.
        self._untracked = [value for pair in zip(written, links, strict=True) for value in pair]
        self._untracked_encoded = [qp_fragment(value) for value in self._untracked]
        self._click_prefix = f"{base}/c/"
        # Tokens are URL-safe base64 of a fixed length; when the prefix needs no encoding
        # either, a click URL is its own quoted-printable form.
        probe = self._click_prefix + "A" * _TOKEN_CHARS
        self._click_plain = qp_fragment(probe) == probe.encode("ascii")
        self._pixel = (
            f'<img src="{base}/o/',
            '.gif" width="1" height="1" alt="" style="display:none">',
        )
        self._pixel_encoded = (
            qp_careful(self._pixel[0].encode()) + SOFT_BREAK,
            SOFT_BREAK + qp_careful(self._pixel[1].encode()),
        )
        signer = _Signer()
        self._clicks: Callable[[int, int], list[str]] = _clicks
        self._open: Callable[[int], str] = tokens.open_token
        if signer.agrees():
            self._clicks, self._open = signer.clicks, signer.open

    def render(
        self, *, values: Mapping[str, str], delivery_id: int | None, unsubscribe_url: str
    ) -> Rendered:
        """1. The value table: unsubscribe URL, pixel, each tag's value (raw and escaped),
        each link (HTML and text form); beside it the same entries as quoted-printable.
        2. Each part joins its literal chunks with its entries."""
        unsubscribe_html = escape(unsubscribe_url)
        unsubscribe_encoded = qp_fragment(unsubscribe_url)
        table = [unsubscribe_url, unsubscribe_html, ""]
        encoded = [
            unsubscribe_encoded,
            unsubscribe_encoded
            if unsubscribe_html == unsubscribe_url
            else qp_fragment(unsubscribe_html),
            b"",
        ]
        cache = self._values
        for name, fallback, fallback_html, fallback_encoded, fallback_html_encoded in self._keys:
            value = values.get(name)
            if value and not value.isspace():
                known = cache.get(value)
                if known is None:
                    if len(cache) >= self.VALUE_CACHE:
                        cache.clear()
                    value_html = escape(value)
                    known = cache[value] = (value_html, qp_fragment(value), qp_fragment(value_html))
                table += (value, known[0])
                encoded += (known[1], known[2])
            else:
                table += (fallback, fallback_html)
                encoded += (fallback_encoded, fallback_html_encoded)
        if self._tracking and delivery_id is not None:
            prefix, plain = self._click_prefix, self._click_plain
            for token in self._clicks(delivery_id, len(self.links)):
                url = prefix + token
                url_encoded = url.encode("ascii") if plain else qp_fragment(url)
                table += (url, url)
                encoded += (url_encoded, url_encoded)
            token = self._open(delivery_id)
            table[_PIXEL] = token.join(self._pixel)
            encoded[_PIXEL] = token.encode("ascii").join(self._pixel_encoded)
        else:
            table += self._untracked
            encoded += self._untracked_encoded
        for char, lines in self._rules:
            length = 0
            for size, entries in lines:
                for entry in entries:
                    size += len(table[entry])
                length = max(length, size)
            line = char * min(WIDTH, length)
            table.append(line)
            line_encoded = self._rules_encoded.get(line)
            if line_encoded is None:
                line_encoded = self._rules_encoded[line] = qp_fragment(line)
            encoded.append(line_encoded)
        return Rendered(
            subject=self._subject.fill(table),
            html=encoded_body(self._html.fill(table), self._html.fill_encoded(encoded)),
            text=encoded_body(self._text.fill(table), self._text.fill_encoded(encoded)),
        )
