"""Plain text from a message's HTML, for the text part of a campaign with none of its own.

Run once per campaign at compile time, so it favours readable output over speed. Built on
the stdlib's html.parser rather than a library: html2text is GPL, and the permissive ones
(inscriptis, html-text, markdownify) bring lxml or BeautifulSoup and do not write links
as ``label (url)``, which is what a reader of a plain-text mail expects. The converter
passes through any character it does not know, so the template compiler's slot markers
(private characters standing for merge tags and tracked links) come out where they went
in, also inside a link's URL.

What it does: headings (h1 and h2 underlined), paragraphs, line breaks, bulleted and
numbered lists (nested lists indented), block quotes (``> ``), preformatted text kept as
is, links as ``label (url)``; scripts, styles, the head and hidden elements (preview text)
dropped; entities decoded; paragraphs wrapped at ``width`` without breaking words or URLs.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from html.parser import HTMLParser

WIDTH = 72

# Elements whose content never shows as text.
SKIP = frozenset({"script", "style", "head", "title", "template", "svg", "object", "iframe"})
VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)
# Blocks that stand apart by a blank line, and blocks that only start a new line.
PARAGRAPH = frozenset({"p", "table", "blockquote", "pre", "dl", "h1", "h2", "h3", "h4", "h5", "h6"})
LINE = frozenset(
    {
        "div",
        "section",
        "article",
        "header",
        "footer",
        "nav",
        "main",
        "aside",
        "center",
        "figure",
        "figcaption",
        "address",
        "dt",
        "dd",
        "caption",
        "tr",
        "td",
        "th",
        "form",
        "fieldset",
        "details",
        "summary",
        "body",
    }
)
UNDERLINE = {"h1": "=", "h2": "-"}

_SPACE = re.compile(r"[ \t\n\r\f\v]+")
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|mso-hide\s*:\s*all", re.IGNORECASE)
# Invisible characters that mail templates use to pad a preview text.
_INVISIBLE = dict.fromkeys(map(ord, "\u034f\u200b\u200c\ufeff\u00ad"))
_BLANK_LINES = re.compile(r"\n{3,}")


def rule(heading: list[str], char: str, width: int = WIDTH) -> str:
    """The line under a heading: as long as its longest line."""
    return char * min(width, max(map(len, heading)))


def html_to_text(
    html: str,
    *,
    width: int = WIDTH,
    resolve: Callable[[str], str] = str,
    underline: Callable[[list[str], str], str] = rule,
) -> str:
    """The text of `html`, lines ending in "\\n". `resolve` maps an href as written to the
    URL it stands for (the compiler's markers to the original URL), so the converter can
    tell a mailto: or an anchor, and a label that only repeats its URL. `underline` makes
    the line under a heading from the heading's lines and the character to use (the
    compiler's sizes itself to the member's values)."""
    converter = _Converter(width=width, resolve=resolve, underline=underline)
    converter.feed(html)
    converter.close()
    return converter.text()


def _same_url(label: str, url: str) -> bool:
    def bare(value: str) -> str:
        value = value.strip().lower()
        for prefix in ("https://", "http://", "mailto:", "tel:"):
            value = value.removeprefix(prefix)
        return value.removeprefix("www.").rstrip("/")

    return bare(label) == bare(url)


def link_text(label: str, href: str, url: str) -> str:
    """A link in the text part: ``label (url)``, or the URL alone when the label is empty or
    repeats it; an in-page anchor and a script link keep only their label. `href` is the
    attribute as written (a tracked link's marker), `url` what it stands for."""
    lower = url.lower()
    if not url or url.startswith("#") or lower.startswith("javascript:"):
        return label
    shown = href
    if href == url and lower.startswith(("mailto:", "tel:")):
        shown = url.split(":", 1)[1].split("?", 1)[0]
    # A label that repeats its URL goes, unless the link is tracked: then the label is
    # the only place the reader sees where the link leads.
    if not label or (href == url and _same_url(label, url)):
        return shown
    return f"{label} ({shown})"


class _Converter(HTMLParser):
    def __init__(
        self,
        *,
        width: int,
        resolve: Callable[[str], str],
        underline: Callable[[list[str], str], str],
    ) -> None:
        super().__init__(convert_charrefs=True)
        self.width = width
        self.resolve = resolve
        self.underline = underline
        self.lines: list[str] = []
        self.inline: list[str] = []
        self.blank = 0  # blank lines wanted before the next line of content
        self.blank_quote = 0  # the quote depth those blank lines belong to
        self.skip_tag = ""  # the element being skipped, with its nesting depth
        self.skip_depth = 0
        self.pre = 0
        self.quote = 0
        self.lists: list[list[int]] = []  # [ordered, counter] per open list
        self.bullet = ""  # the marker of the list item whose first line is still to come
        self.links: list[tuple[str, int]] = []  # open <a>: href and where its label starts

    # Parser events

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.skip_tag:
            if tag == "body" and self.skip_tag == "head":  # a head that was never closed
                self.skip_tag, self.skip_depth = "", 0
            elif tag == self.skip_tag:
                self.skip_depth += 1
            return
        attributes = dict(attrs)
        if tag in SKIP or (tag not in VOID and _hidden(attributes)):
            self.skip_tag, self.skip_depth = tag, 1
            return
        if tag == "br":
            if self.links:  # inside a link's label a break is only a space
                self.inline.append(" ")
            else:
                self._line_break()
        elif tag == "a":
            self.links.append((attributes.get("href") or "", len(self.inline)))
        elif tag == "img":
            if self.links and (alt := (attributes.get("alt") or "").strip()):
                self.inline.append(f" {alt} ")
        elif tag == "hr":
            self._block(1)
            self._emit(["-" * min(self.width, 24)])
            self._block(1)
        elif tag in ("ul", "ol"):
            self._block(0 if self.lists else 1)
            self.lists.append([tag == "ol", 0])
        elif tag == "li":
            self._block(0)
            if self.lists:
                self.lists[-1][1] += 1
                ordered, count = self.lists[-1]
                self.bullet = f"{count}. " if ordered else "- "
            else:
                self.bullet = "- "
        elif tag == "blockquote":
            self._block(1)
            self.quote += 1
        elif tag == "pre":
            self._block(1)
            self.pre += 1
        elif tag in PARAGRAPH:
            self._block(1)
        elif tag in LINE:
            self._block(0)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if self.skip_tag:
            if tag == self.skip_tag:
                self.skip_depth -= 1
                if not self.skip_depth:
                    self.skip_tag = ""
            return
        if tag == "a":
            self._close_link()
        elif tag in ("ul", "ol"):
            self._block(0)
            if self.lists:
                self.lists.pop()
            self._block(0 if self.lists else 1)
        elif tag == "li":
            self._block(0)
            self.bullet = ""
        elif tag == "blockquote":
            self._block(1)
            self.quote = max(0, self.quote - 1)
        elif tag == "pre":
            self._block(1)
            self.pre = max(0, self.pre - 1)
        elif tag in UNDERLINE:
            heading = self._flush()
            if heading:
                self._emit([self.underline(heading, UNDERLINE[tag])])
            self._block(1)
        elif tag in PARAGRAPH:
            self._block(1)
        elif tag in LINE:
            self._block(0)

    def handle_data(self, data: str) -> None:
        if not self.skip_tag:
            self.inline.append(data)

    # Building lines

    def text(self) -> str:
        while self.links:
            self._close_link()
        self._flush()
        text = "\n".join(self.lines).translate(_INVISIBLE).replace("\xa0", " ")
        text = "\n".join(line.rstrip() for line in text.split("\n"))
        text = _BLANK_LINES.sub("\n\n", text).strip("\n")
        return text + "\n" if text else ""

    def _close_link(self) -> None:
        if not self.links:
            return
        href, start = self.links.pop()
        label = _SPACE.sub(" ", "".join(self.inline[start:])).strip()
        del self.inline[start:]
        self.inline.append(link_text(label, href, self.resolve(href).strip()))

    def _prefixes(self) -> tuple[str, str]:
        quote = "> " * self.quote
        indent = "   " * max(0, len(self.lists) - 1)
        if not self.lists and not self.bullet:
            return quote, quote
        bullet = self.bullet or ""
        first = quote + indent + bullet
        return first, quote + indent + " " * len(bullet or "- ")

    def _flush(self) -> list[str]:
        """Set the collected inline text as wrapped lines; the lines, without prefixes."""
        raw = "".join(self.inline)
        self.inline = []
        # A block inside a link: its label is what follows the break.
        self.links = [(href, 0) for href, _ in self.links]
        if self.pre:
            body = raw.removeprefix("\n").rstrip()
            if not body.strip():
                return []
            lines = body.split("\n")
            first, rest = self._prefixes()
            self._emit([first + lines[0]] + [rest + line for line in lines[1:]])
            self.bullet = ""
            return lines
        text = _SPACE.sub(" ", raw).strip()
        if not text:
            return []
        first, rest = self._prefixes()
        wrapper = textwrap.TextWrapper(
            width=self.width,
            initial_indent=first,
            subsequent_indent=rest,
            break_long_words=False,
            break_on_hyphens=False,
        )
        wrapped = wrapper.wrap(text)
        self._emit(wrapped)
        self.bullet = ""
        return [line[len(first) if i == 0 else len(rest) :] for i, line in enumerate(wrapped)]

    def _emit(self, lines: list[str]) -> None:
        if self.lines and self.blank:
            self.lines.extend(["> " * self.blank_quote] * self.blank)
        self.blank = 0
        self.lines.extend(lines)

    def _block(self, blank: int) -> None:
        self._flush()
        if blank:
            self.blank_quote = min(self.blank_quote, self.quote) if self.blank else self.quote
            self.blank = max(self.blank, blank)

    def _line_break(self) -> None:
        if not self._flush():
            # A break on an empty line (<br><br>) opens a blank line, once.
            self._block(1)


def _hidden(attributes: dict[str, str | None]) -> bool:
    return "hidden" in attributes or bool(_HIDDEN_STYLE.search(attributes.get("style") or ""))
