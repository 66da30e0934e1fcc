"""The Content-Security-Policy (settings.CONTENT_SECURITY_POLICY) runs scripts only from our
own files or with the page's nonce: an inline event handler (onclick="…") or a script block
without the nonce is refused by the browser, silently. Every template is read for both."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(settings.BASE_DIR)
HANDLER = re.compile(r"<[a-zA-Z][^>]*\son[a-z]+\s*=", re.DOTALL)
SCRIPT = re.compile(r"<script\b([^>]*)>", re.IGNORECASE)


def templates() -> list[Path]:
    found = sorted(ROOT.glob("templates/**/*.html")) + sorted(ROOT.glob("*/templates/**/*.html"))
    return [path for path in found if ".venv" not in path.parts]


def test_there_are_templates_to_read():
    assert len(templates()) > 50


@pytest.mark.parametrize("path", templates(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_inline_handler_and_every_inline_script_has_the_nonce(path: Path):
    text = path.read_text()
    handlers = [m.group(0)[-60:] for m in HANDLER.finditer(text)]
    assert handlers == [], f"inline event handlers, refused by the CSP: {handlers}"
    for attributes in SCRIPT.findall(text):
        if "src=" not in attributes:
            assert 'nonce="{{ request.csp_nonce }}"' in attributes, attributes


def test_the_checks_catch_what_the_csp_refuses(tmp_path: Path):
    assert HANDLER.search('<input id="x" readonly\n   onfocus="this.select()">')
    assert not HANDLER.search('<input id="x" data-on="1" value="onfocus=">')
    assert SCRIPT.findall("<script>alert(1)</script>") == [""]
