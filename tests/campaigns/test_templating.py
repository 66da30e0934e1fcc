"""The merge-tag language: parsing and its errors, values and fallbacks, escaping, tracked
links and the open pixel, the preheader, and the text part made from the HTML."""

from __future__ import annotations

import pickle
import random
import re
from binascii import a2b_qp

import pytest

from campaigns import tokens
from campaigns.html_text import html_to_text
from campaigns.templating import (
    CompiledCampaign,
    Rendered,
    TemplateError,
    compile_campaign,
    template_check,
)

PUBLIC = "https://mail.heyloyalty.test"
FIELDS = ("firstname", "lastname", "city", "points")
UNSUBSCRIBE = f"{PUBLIC}/u/unsubscribe-token"


@pytest.fixture(autouse=True)
def public_url(settings):
    settings.PUBLIC_URL = PUBLIC


def compiled(
    html: str = "<p>Hej</p>",
    *,
    subject: str = "Hej",
    preheader: str = "",
    text: str = "",
    fallbacks: dict[str, str] | None = None,
    tracking: bool = True,
) -> CompiledCampaign:
    return compile_campaign(
        subject=subject,
        preheader=preheader,
        html=html,
        text=text,
        field_names=FIELDS,
        fallbacks=fallbacks or {},
        tracking=tracking,
    )


def render(campaign: CompiledCampaign, delivery_id: int | None = 7, **values: str) -> Rendered:
    return campaign.render(values=values, delivery_id=delivery_id, unsubscribe_url=UNSUBSCRIBE)


def clicks(html: str) -> list[tuple[int, int] | None]:
    """The (delivery id, position) of each click URL in the HTML, in order."""
    return [tokens.click_read(token) for token in re.findall(rf'{PUBLIC}/c/([\w-]+)"', html)]


# Merge tags and fallbacks


def test_it_merges_fields_into_subject_html_and_text():
    campaign = compiled(
        "<p>Hej {{ firstname }} fra {{city}}</p>",
        subject="{{firstname}}, {{ points }} point",
        text="Hej {{ firstname }}, du bor i {{ city }}.",
    )
    rendered = render(campaign, firstname="Søren", city="Århus", points="120")

    assert rendered.subject == "Søren, 120 point"
    assert "<p>Hej Søren fra Århus</p>" in rendered.html
    assert rendered.text == "Hej Søren, du bor i Århus."


@pytest.mark.parametrize(
    "tag",
    [
        "{{firstname}}",
        "{{ firstname }}",
        "{{\tfirstname\n}}",
        '{{firstname|default:"ven"}}',
        "{{ firstname | default: 'ven' }}",
        '{{  firstname  |  default  :  "ven"  }}',
    ],
)
def test_whitespace_inside_the_braces_is_optional(tag):
    assert render(compiled(subject=f"Hej {tag}!"), firstname="Åse").subject == "Hej Åse!"


def test_a_missing_or_empty_value_uses_the_tags_fallback_then_the_fields():
    campaign = compiled(
        subject='{{ firstname | default: "ven" }}/{{ city }}/{{ lastname }}/'
        "{{ city | default: 'byen' }}",
        fallbacks={"city": "Danmark", "firstname": "kunde"},
    )

    assert render(campaign).subject == "ven/Danmark//byen"
    assert render(campaign, firstname="", city="  ").subject == "ven/Danmark//byen"
    assert render(campaign, firstname="Bo", city="Køge", lastname="Ek").subject == "Bo/Køge/Ek/Køge"


def test_a_fallback_keeps_quotes_of_the_other_kind_and_braces():
    campaign = compiled(
        subject="""{{ firstname | default: "Bo's" }} {{ city | default: '"}}"' }}"""
    )
    assert render(campaign).subject == 'Bo\'s "}}"'


def test_an_explicitly_empty_tag_fallback_overrides_the_fields():
    campaign = compiled(subject='[{{ city | default: "" }}]', fallbacks={"city": "Danmark"})
    assert render(campaign).subject == "[]"


def test_the_built_in_tags_are_the_email_and_the_unsubscribe_url():
    campaign = compiled(
        '<p>{{ email }}</p><a href="{{ unsubscribe_url }}">Afmeld</a>',
        subject="Til {{ email }}",
        text="Afmeld: {{ unsubscribe_url }}",
    )
    rendered = render(campaign, email="bo@example.dk")

    assert rendered.subject == "Til bo@example.dk"
    assert f'<a href="{UNSUBSCRIBE}">Afmeld</a>' in rendered.html
    assert rendered.text == f"Afmeld: {UNSUBSCRIBE}"


def test_values_are_escaped_in_html_also_in_attributes_and_raw_in_subject_and_text():
    campaign = compiled(
        '<p title="{{ firstname }}">{{ firstname }}</p>',
        subject="Hej {{ firstname }}",
        preheader="Til {{ firstname }}",
        text="Hej {{ firstname }}",
    )
    rendered = render(campaign, firstname="<script>alert(\"x\")</script> & 'co'")

    assert "<script>" not in rendered.html
    escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#x27;co&#x27;"
    assert f'<p title="{escaped}">{escaped}</p>' in rendered.html
    assert f">Til {escaped}</div>" in rendered.html
    assert rendered.subject == "Hej <script>alert(\"x\")</script> & 'co'"
    assert rendered.text == "Hej <script>alert(\"x\")</script> & 'co'"


def test_a_fallback_is_escaped_in_html_too():
    rendered = render(compiled('<p>{{ firstname | default: "<b>ven</b>" }}</p>'))
    assert "<p>&lt;b&gt;ven&lt;/b&gt;</p>" in rendered.html


def test_the_template_reads_nothing_but_the_values_it_is_given():
    with pytest.raises(TemplateError):
        compiled(subject="{{ settings.SECRET_KEY }}")
    with pytest.raises(TemplateError):
        compiled(subject="{{ __class__ }}")
    # Values that look like tags are printed, never evaluated.
    assert render(compiled(subject="{{ firstname }}"), firstname="{{ email }}").subject == (
        "{{ email }}"
    )


# Errors


@pytest.mark.parametrize("part", ["subject", "preheader", "html", "text"])
@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("Hej\n\n{{ fristname }}", 'unknown tag "fristname" (line 3); did you mean "firstname"?'),
        ("Hej {{ shoe_size }}", 'unknown tag "shoe_size" (line 1)'),
        ("Hej\n{{ firstname ", '"{{ firstname " is not closed with "}}" (line 2)'),
        ("Hej {{ }} du", 'empty tag "{{ }}" (line 1)'),
        ("Hej {{}}", 'empty tag "{{}}" (line 1)'),
        (
            "{{ firstname | dflt: 'x' }}",
            "bad fallback in \"{{ firstname | dflt: 'x' }}\" (line 1): "
            'write {{ firstname | default: "text" }}',
        ),
        (
            "{{ firstname | default: ven }}",
            'bad fallback in "{{ firstname | default: ven }}" (line 1): '
            'write {{ firstname | default: "text" }}',
        ),
        (
            "{{ first name }}",
            'bad tag "{{ first name }}" (line 1): a tag is a field name, such as "{{ firstname }}"',
        ),
    ],
)
def test_each_problem_names_the_part_and_the_tag(part, source, expected):
    parts = {"subject": "Hej", "preheader": "", "html": "<p>Hej</p>", "text": ""}
    parts[part] = source

    with pytest.raises(TemplateError) as caught:
        compile_campaign(**parts, field_names=FIELDS, fallbacks={}, tracking=True)
    assert caught.value.part == part
    assert caught.value.message == expected
    assert str(caught.value) == f"{part}: {expected}"
    assert template_check(**parts, field_names=FIELDS) == {part: expected}


def test_the_check_reports_every_problem_of_every_part():
    problems = template_check(
        subject="{{ fristname }}",
        preheader="ok",
        html="<p>{{ a }}</p>\n<p>{{ b }}</p>{{ c",
        text="{{ }}",
        field_names=FIELDS,
    )

    assert problems == {
        "subject": 'unknown tag "fristname" (line 1); did you mean "firstname"?',
        "html": 'unknown tag "a" (line 1); unknown tag "b" (line 2); '
        '"{{ c" is not closed with "}}" (line 2)',
        "text": 'empty tag "{{ }}" (line 1)',
    }


def test_a_clean_campaign_has_no_problems():
    assert (
        template_check(
            subject="{{ firstname }}",
            preheader="{{ city }}",
            html='<a href="{{ unsubscribe_url }}">x</a> {{ email }}',
            text="",
            field_names=FIELDS,
        )
        == {}
    )


def test_compile_raises_the_first_problem_in_part_order():
    with pytest.raises(TemplateError) as caught:
        compiled("{{ nope }}", subject="{{ neither }}")
    assert caught.value.part == "subject"
    assert "neither" in caught.value.message


def test_a_template_error_survives_pickling():
    error = TemplateError("html", 'unknown tag "x" (line 1)')
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert (copy.part, copy.message, str(copy)) == (error.part, error.message, str(error))


# Tracked links and the open pixel

LINKS = """<html><body>
<a href="https://bakery.example/bread?a=1&amp;b=2">Bread</a>
<A class="btn" HREF='https://bakery.example/cake'>Cake</A>
<a href="https://bakery.example/bread?a=1&amp;b=2">Bread again</a>
<a href="mailto:hello@bakery.example">Mail us</a>
<a href="tel:+4512345678">Call us</a>
<a href="#top">Top</a>
<a href="/relative">Relative</a>
<a href="{{ unsubscribe_url }}">Unsubscribe</a>
<a href="https://bakery.example/me?id={{ email }}">Personal</a>
<a name="anchor">No href</a>
<a data-href="https://x.example" href="HTTP://BAKERY.EXAMPLE/UPPER">Upper</a>
</body></html>"""


def test_tracked_links_get_positions_in_document_order_and_decode_to_the_delivery():
    campaign = compiled(LINKS)
    rendered = render(campaign, delivery_id=4242, email="bo@example.dk")

    # The same URL twice gets two positions (documented in the module).
    assert campaign.links == [
        "https://bakery.example/bread?a=1&b=2",
        "https://bakery.example/cake",
        "https://bakery.example/bread?a=1&b=2",
        "HTTP://BAKERY.EXAMPLE/UPPER",
    ]
    assert clicks(rendered.html) == [(4242, 0), (4242, 1), (4242, 2), (4242, 3)]
    assert 'class="btn" HREF="' in rendered.html
    assert 'data-href="https://x.example"' in rendered.html
    assert "bakery.example/bread" not in rendered.html
    assert "bakery.example/cake" not in rendered.html


def test_mailto_tel_anchors_relative_and_merge_tag_links_are_not_tracked():
    rendered = render(compiled(LINKS), delivery_id=1, email="bo@example.dk")

    for kept in [
        '<a href="mailto:hello@bakery.example">',
        '<a href="tel:+4512345678">',
        '<a href="#top">',
        '<a href="/relative">',
        f'<a href="{UNSUBSCRIBE}">Unsubscribe',
        '<a href="https://bakery.example/me?id=bo@example.dk">Personal',
        '<a name="anchor">',
    ]:
        assert kept in rendered.html


def test_each_recipient_gets_their_own_click_and_open_tokens():
    campaign = compiled(LINKS)
    first, second = render(campaign, delivery_id=1), render(campaign, delivery_id=2)

    assert {delivery for delivery, _ in filter(None, clicks(first.html))} == {1}
    assert {delivery for delivery, _ in filter(None, clicks(second.html))} == {2}
    assert opens(first.html) == [1]
    assert opens(second.html) == [2]


def opens(html: str) -> list[int | None]:
    return [tokens.open_read(token) for token in re.findall(rf"{PUBLIC}/o/([\w-]+)\.gif", html)]


def test_the_open_pixel_goes_before_the_end_of_the_body():
    rendered = render(compiled("<html><body><p>Hej</p></BODY>\n</html>"), delivery_id=99)

    pixel = re.search(r'<img src="[^"]+/o/([\w-]+)\.gif"[^>]*>', rendered.html)
    assert pixel is not None
    assert pixel[0].endswith('width="1" height="1" alt="" style="display:none">')
    assert rendered.html.endswith(f"{pixel[0]}</BODY>\n</html>")
    assert tokens.open_read(pixel[1]) == 99


def test_the_open_pixel_goes_at_the_end_without_a_body_element():
    rendered = render(compiled("<p>Hej</p>"), delivery_id=5)
    assert rendered.html.startswith("<p>Hej</p><img ")
    assert opens(rendered.html) == [5]


def test_previews_and_test_sends_keep_links_as_written_and_have_no_pixel():
    campaign = compiled(LINKS)
    rendered = render(campaign, delivery_id=None, email="bo@example.dk")

    assert "/c/" not in rendered.html
    assert "/o/" not in rendered.html
    assert '<a href="https://bakery.example/bread?a=1&amp;b=2">Bread</a>' in rendered.html
    assert '<A class="btn" HREF="https://bakery.example/cake">Cake</A>' in rendered.html
    assert "Bread (https://bakery.example/bread?a=1&b=2)" in " ".join(rendered.text.split())
    assert campaign.links  # the positions exist all the same


def test_without_tracking_there_are_no_positions_and_nothing_is_rewritten():
    campaign = compiled(LINKS, tracking=False)
    rendered = render(campaign, delivery_id=5)

    assert campaign.links == []
    assert "/c/" not in rendered.html and "/o/" not in rendered.html
    assert "Cake (https://bakery.example/cake)" in " ".join(rendered.text.split())


def test_untracked_links_with_quotes_stay_valid_html():
    rendered = render(compiled("""<a href='https://x.example/?q="a"'>Q</a>"""), delivery_id=None)
    assert '<a href="https://x.example/?q=&quot;a&quot;">Q</a>' in rendered.html


# The preheader


def test_the_preheader_is_a_hidden_element_right_after_the_body_tag():
    campaign = compiled(
        '<html><body class="x" style="margin:0"><p>Hej</p></body></html>',
        preheader="Nyt til {{ firstname }} & co",
    )
    rendered = render(campaign, firstname="<Bo>")

    match = re.search(
        r'<body class="x" style="margin:0"><div style="([^"]+)">(.*?)</div><p>', rendered.html
    )
    assert match is not None
    assert "display:none" in match[1]
    assert match[2] == "Nyt til &lt;Bo&gt; &amp; co"
    assert "Nyt til" not in rendered.text


def test_the_preheader_goes_first_without_a_body_tag_and_is_absent_when_blank():
    assert render(compiled("<p>Hej</p>", preheader="Hi")).html.startswith(
        '<div style="display:none'
    )
    assert "<div" not in render(compiled("<p>Hej</p>", preheader="  ")).html


# The text part


NEWSLETTER = """<!DOCTYPE html><html><head><title>Nyhedsbrev</title>
<style>p { color: red }</style><script>var x = "<p>no</p>";</script></head>
<body><div style="display:none">Preview padding &zwnj;&nbsp;</div>
<h1>Hej {{ firstname | default: "ven" }}</h1>
<p>Vi har bagt med smør &amp; kærlighed siden 1952, og i denne uge får du nyt
surdejsbrød, kanelsnegle og årstidens frugttærter til særpris i butikken.</p>
<h2>Tilbud</h2>
<ul><li>Rugbrød</li><li>Kager<ol><li>Kanelsnegl</li><li>Tebirkes</li></ol></li></ul>
<p>Linje et<br>Linje to</p>
<blockquote><p>Bedste bager i byen</p></blockquote>
<p><a href="https://bakery.example/shop">Se alle tilbud</a> eller
<a href="mailto:hej@bakery.example">skriv til os</a>.</p>
<p><a href="{{ unsubscribe_url }}">Afmeld</a> &copy; Bageren</p>
</body></html>"""


def test_the_text_part_is_made_from_the_html_when_none_is_written():
    rendered = render(compiled(NEWSLETTER), delivery_id=31, firstname="Søren")
    text = rendered.text

    assert text.startswith("Hej Søren\n=========\n\nVi har bagt med smør & kærlighed siden 1952")
    assert "Tilbud\n------\n\n- Rugbrød\n- Kager\n   1. Kanelsnegl\n   2. Tebirkes\n" in text
    assert "Linje et\nLinje to" in text
    assert "> Bedste bager i byen" in text
    assert "skriv til os (hej@bakery.example)" in text
    assert f"Afmeld ({UNSUBSCRIBE}) © Bageren" in " ".join(text.split())
    for gone in ["Nyhedsbrev", "color: red", "var x", "Preview padding", "<p>", "&amp;"]:
        assert gone not in text
    # The link carries the recipient's click URL, for the link's position.
    link = re.search(rf"Se alle tilbud\s+\({PUBLIC}/c/([\w-]+)\)", text)
    assert link is not None
    assert tokens.click_read(link[1]) == (31, 0)


def test_the_generated_text_wraps_paragraphs_but_not_urls():
    rendered = render(compiled(NEWSLETTER), delivery_id=31, firstname="Søren")
    lines = rendered.text.splitlines()

    assert max(len(line) for line in lines if "://" not in line) <= 72
    assert "Vi har bagt med smør & kærlighed siden 1952, og i denne uge får du nyt" in lines


def test_a_written_text_part_is_used_as_it_is():
    rendered = render(
        compiled(NEWSLETTER, text="Hej {{ firstname }}\nhttps://bakery.example/shop"),
        firstname="<Bo>",
    )
    assert rendered.text == "Hej <Bo>\nhttps://bakery.example/shop"


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>a</p><p>b</p>", "a\n\nb\n"),
        ("<div>a</div><div>b</div>", "a\nb\n"),
        ("<p>a<br><br>b</p>", "a\n\nb\n"),
        ("<pre>  x\n    y</pre>", "  x\n    y\n"),
        ("<p>&lt;tag&gt; &quot;q&quot; &#248; &nbsp;x</p>", '<tag> "q" ø  x\n'),
        ('<a href="https://x.example">https://x.example</a>', "https://x.example\n"),
        (
            '<a href="https://x.example"><img src="l.png" alt="Logo"></a>',
            "Logo (https://x.example)\n",
        ),
        ('<a href="https://x.example"><img src="l.png"></a>', "https://x.example\n"),
        ('<a href="#top">Top</a>', "Top\n"),
        ("<table><tr><td>A</td><td>B</td></tr></table><p>C</p>", "A\nB\n\nC\n"),
        ("<p>a</p><hr><p>b</p>", "a\n\n" + "-" * 24 + "\n\nb\n"),
        ("<head><title>T</title><body><p>x</p>", "x\n"),
        ('<p hidden>secret</p><span style="DISPLAY: none">s</span><p>x</p>', "x\n"),
        ("", ""),
    ],
)
def test_html_to_text(html, text):
    assert html_to_text(html) == text


# The quoted-printable form the message builder uses


def test_each_rendered_body_carries_its_quoted_printable_form():
    rng = random.Random(4)  # noqa: S311 - a fixed seed: the same cases every run
    alphabet = ["a", "æ", "ø", " ", "\t", "=", ".", "From ", "\n", "🎉", "<", "x" * 80]
    campaign = compiled(
        '.{{ firstname }}{{ lastname }}\nFrom {{ city }} <a href="https://x.example/{{ points }}">'
        "{{ points }}</a>\n" + "y" * 200 + " {{ firstname }} ",
        text="{{ firstname }}.{{ city }}\n.{{ lastname }}",
        preheader="{{ firstname }}",
    )
    for delivery_id in [None, 1, 2**40]:
        for _ in range(40):
            values = {
                name: "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 8)))
                for name in FIELDS
            }
            rendered = render(campaign, delivery_id, **values)
            for body in (rendered.html, rendered.text):
                encoded = body.qp  # type: ignore[attr-defined]
                assert a2b_qp(encoded).decode() == body.replace("\n", "\r\n")
                lines = encoded.split(b"\r\n")
                assert all(len(line) <= 76 for line in lines)
                assert not any(line.startswith((b".", b"From ")) for line in lines)
                assert b"\r" not in encoded.replace(b"\r\n", b"")
                assert b"\n" not in encoded.replace(b"\r\n", b"")


def test_the_fast_tokens_fall_back_to_campaigns_tokens_if_they_ever_differ(monkeypatch):
    monkeypatch.setattr(tokens, "click_token", lambda delivery_id, position: f"t{position}")
    rendered = render(compiled('<a href="https://x.example">x</a>'), delivery_id=3)
    assert f'href="{PUBLIC}/c/t0"' in rendered.html
