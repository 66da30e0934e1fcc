import io
import random
import tracemalloc
import zipfile
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from members.csvsource import (
    FIELD_LIMIT,
    MAX_RECORD_CHARS,
    SAMPLE_SIZE,
    CsvError,
    CsvSource,
    NotCsvError,
    Row,
    open_csv,
)


def read(data: bytes, **options) -> CsvSource:
    return open_csv(io.BytesIO(data), **options)


def rows(source: CsvSource) -> list[tuple[int, list[str]]]:
    """Numbers and values of the good rows; fails on any error row."""
    result = []
    for row in source:
        assert row.error is None, row.error
        result.append((row.number, row.values))
    return result


def ascii_rows(count: int, start: int = 0) -> str:
    return "".join(f"Anders{i};anders{i}@example.dk;1234\n" for i in range(start, start + count))


# -- encodings ---------------------------------------------------------------------------


def test_a_danish_excel_file_in_windows_1252_keeps_its_letters():
    text = (
        "Navn;Email;By\r\nSøren Ærø;soren@example.dk;Århus\r\nÅse Møller;ase@example.dk;Køge €\r\n"
    )
    source = read(text.encode("cp1252"))
    assert source.encoding == "cp1252"
    assert source.delimiter == ";"
    assert source.header == ["Navn", "Email", "By"]
    assert rows(source) == [
        (2, ["Søren Ærø", "soren@example.dk", "Århus"]),
        (3, ["Åse Møller", "ase@example.dk", "Køge €"]),
    ]


def test_the_utf8_bom_is_not_part_of_the_first_header_name():
    source = read("email,navn\nsoren@example.dk,Søren\n".encode("utf-8-sig"))
    assert source.encoding == "utf-8-sig"
    assert source.header == ["email", "navn"]
    assert rows(source) == [(2, ["soren@example.dk", "Søren"])]


def test_an_explicit_utf8_encoding_still_drops_the_bom():
    source = read("email\nsoren@example.dk\n".encode("utf-8-sig"), encoding="UTF8")
    assert source.header == ["email"]


def test_utf8_without_bom_and_tabs_is_read():
    source = read("navn\temail\nÆblemand Ødegård\tae@example.dk\n".encode())
    assert (source.encoding, source.delimiter) == ("utf-8", "\t")
    assert rows(source) == [(2, ["Æblemand Ødegård", "ae@example.dk"])]


def test_a_pipe_separated_file_is_read():
    source = read(b"navn|email|postnr\nSoren|s@example.dk|8000\nAse|a@example.dk|4600\n")
    assert source.delimiter == "|"
    assert rows(source)[1] == (3, ["Ase", "a@example.dk", "4600"])


@pytest.mark.parametrize("delimiter", [",", ";", "|", "\t", ":"])
def test_each_supported_delimiter_is_detected(delimiter):
    lines = [
        ["navn", "email", "by"],
        ["Søren", "s@example.dk", "Odense"],
        ["Åse", "a@x.dk", "Køge"],
    ]
    source = read("\n".join(delimiter.join(line) for line in lines).encode())
    assert source.delimiter == delimiter
    assert rows(source) == [(2, lines[1]), (3, lines[2])]


def test_a_single_column_of_emails_without_header_is_one_column_of_rows():
    source = read(b"soren@example.dk\nase@example.dk\r\nbo@example.dk")
    assert source.header is None
    assert rows(source) == [
        (1, ["soren@example.dk"]),
        (2, ["ase@example.dk"]),
        (3, ["bo@example.dk"]),
    ]


def test_a_single_column_keeps_a_comma_inside_a_value():
    source = read(b"navn\nAse\nHansen, Soren\nBo\n", has_header=True)
    assert source.delimiter != ","
    assert [values for _, values in rows(source)] == [["Ase"], ["Hansen, Soren"], ["Bo"]]


def test_decimal_commas_do_not_outvote_danish_semicolons():
    source = read("navn;beløb;rabat\nSøren;12,50;1,5\nÅse;7,25;0,5\n".encode("cp1252"))
    assert source.delimiter == ";"
    assert rows(source)[0] == (2, ["Søren", "12,50", "1,5"])


def test_delimiters_inside_quoted_values_do_not_fool_detection():
    text = '"Hansen; Søren; Jr.",s@example.dk\n"Møller; Åse; Sr.",a@example.dk\n'
    source = read(text.encode())
    assert source.delimiter == ","
    assert rows(source)[0] == (1, ["Hansen; Søren; Jr.", "s@example.dk"])


def test_explicit_delimiter_and_encoding_override_detection():
    source = read("navn,email\nSøren,s@example.dk\n".encode(), delimiter="|", encoding="cp1252")
    assert (source.encoding, source.delimiter) == ("cp1252", "|")
    mojibake = "Søren".encode().decode("cp1252")  # What reading UTF-8 as cp1252 must give.
    assert rows(source) == [(2, [f"{mojibake},s@example.dk"])]


def test_excel_unicode_text_is_read_when_the_caller_names_utf16():
    data = "email\tnavn\r\nase@example.dk\tÅse Møller\r\n".encode("utf-16")
    source = read(data, encoding="utf-16")
    assert (source.encoding, source.delimiter) == ("utf-16", "\t")
    assert rows(source) == [(2, ["ase@example.dk", "Åse Møller"])]


def test_bytes_an_explicit_utf16_cannot_decode_raise_with_a_line_number():
    data = "email\r\nase@example.dk\r\n".encode("utf-16") + b"x"
    with pytest.raises(CsvError, match="utf-16 from line 3"):
        list(read(data, encoding="utf-16"))


def test_a_file_opened_in_text_mode_is_a_type_error():
    with pytest.raises(TypeError, match="binary"):
        open_csv(io.StringIO("email\n"))  # type: ignore[arg-type]


def test_an_unknown_encoding_or_an_unusable_delimiter_is_a_value_error():
    with pytest.raises(ValueError, match="encoding"):
        read(b"a,b\n", encoding="klingon")
    with pytest.raises(ValueError, match="delimiter"):
        read(b"a,b\n", delimiter="\\t")


@pytest.mark.parametrize(("character", "bytes_inside_sample"), [("ø", 1), ("€", 1), ("€", 2)])
def test_a_utf8_character_cut_by_the_sample_boundary_does_not_break_detection(
    character, bytes_inside_sample
):
    encoded = character.encode()
    head = "navn;email\n" + ascii_rows(5000)
    head = head[: SAMPLE_SIZE - bytes_inside_sample - len("Byg;b@example.dk;S")]
    head = head[: head.rfind("\n") + 1]
    padding = "x" * (SAMPLE_SIZE - bytes_inside_sample - len(head) - len(";b@example.dk;S"))
    data = f"{head}{padding};b@example.dk;S{character}ren\n".encode() + b"Bo;bo@example.dk;1\n"
    start = SAMPLE_SIZE - bytes_inside_sample
    assert data[start : start + len(encoded)] == encoded
    assert start + len(encoded) > SAMPLE_SIZE
    source = read(data)
    assert source.encoding == "utf-8"
    assert rows(source)[-2][1] == [padding, "b@example.dk", f"S{character}ren"]
    assert source.recoded_rows == 0


def test_windows_1252_after_an_ascii_sample_is_read_as_windows_1252_for_those_rows():
    data = ("navn;email;nr\n" + ascii_rows(3000)).encode()
    assert len(data) > SAMPLE_SIZE
    data += "Søren Ærø;soren@example.dk;1\n".encode("cp1252") + b"Bo;bo@example.dk;2\n"
    source = read(data)
    assert source.encoding == "utf-8"
    read_rows = rows(source)
    assert read_rows[-2:] == [
        (3002, ["Søren Ærø", "soren@example.dk", "1"]),
        (3003, ["Bo", "bo@example.dk", "2"]),
    ]
    assert source.recoded_rows == 1


def test_with_an_explicit_utf8_encoding_bytes_that_are_not_utf8_are_an_error_for_their_row():
    data = "navn;email\nÅse;a@example.dk\n".encode() + "Søren;s@example.dk\n".encode("cp1252")
    source = read(data + b"Bo;bo@example.dk\n", encoding="utf-8")
    result = list(source)
    assert result[0] == Row(2, ["Åse", "a@example.dk"])
    assert result[1].number == 3
    assert result[1].error is not None
    assert "Row 3" in result[1].error
    assert "0xF8" in result[1].error
    assert result[2] == Row(4, ["Bo", "bo@example.dk"])


def test_a_byte_windows_1252_leaves_undefined_is_an_error_for_its_row():
    data = "navn;email\nSøren;s@example.dk\nB\x81o;bo@example.dk\nÅse;a@example.dk\n"
    source = read(data.encode("latin-1"))
    assert source.encoding == "cp1252"
    result = list(source)
    assert [row.number for row in result] == [2, 3, 4]
    assert result[1].error is not None
    assert "Row 3" in result[1].error
    assert result[2].values == ["Åse", "a@example.dk"]


# -- parsing -----------------------------------------------------------------------------


def test_quoted_values_keep_newlines_delimiters_and_doubled_quotes_and_rows_keep_their_lines():
    text = (
        "navn;email;note\n"
        '"Søren\nÆrø";s@example.dk;"Sagde ""hej""; og gik"\n'
        "Åse;a@example.dk;\n"
        '"Bo";"bo@example.dk";"tre\nlinjer\nher"\n'
        "Ib;ib@example.dk;x\n"
    )
    assert rows(read(text.encode())) == [
        (2, ["Søren\nÆrø", "s@example.dk", 'Sagde "hej"; og gik']),
        (4, ["Åse", "a@example.dk", ""]),
        (5, ["Bo", "bo@example.dk", "tre\nlinjer\nher"]),
        (8, ["Ib", "ib@example.dk", "x"]),
    ]


def test_blank_lines_are_skipped_but_still_counted():
    text = "email;navn\n\nsoren@example.dk;Søren\n   \n;;\n\r\nase@example.dk;Åse\n\n"
    assert rows(read(text.encode())) == [
        (3, ["soren@example.dk", "Søren"]),
        (7, ["ase@example.dk", "Åse"]),
    ]


@pytest.mark.parametrize("newline", ["\r\n", "\n", "\r"])
def test_crlf_lf_and_cr_line_endings_all_end_rows(newline):
    text = newline.join(
        ["navn;email", "Søren;s@example.dk", f'"Åse{newline}Møller";a@example.dk', "Bo;bo@x.dk"]
    )
    assert rows(read(text.encode())) == [
        (2, ["Søren", "s@example.dk"]),
        (3, [f"Åse{newline}Møller", "a@example.dk"]),
        (5, ["Bo", "bo@x.dk"]),
    ]


def test_spaces_around_values_are_trimmed():
    text = '  navn ; email  \n  Søren Ærø  ;\ts@example.dk\t\n\u00a0Åse\u00a0; "a@example.dk " \n'
    source = read(text.encode())
    assert source.header == ["navn", "email"]
    assert rows(source) == [(2, ["Søren Ærø", "s@example.dk"]), (3, ["Åse", "a@example.dk"])]


def test_an_uploaded_file_is_read():
    upload = SimpleUploadedFile("members.csv", "email;navn\ns@example.dk;Søren\n".encode("cp1252"))
    assert rows(open_csv(upload)) == [(2, ["s@example.dk", "Søren"])]


# -- header ------------------------------------------------------------------------------


def test_a_first_row_of_text_above_emails_is_taken_as_the_header():
    source = read(b"Fornavn;E-mail;Mobil\nSoren;s@example.dk;+45 12 34 56 78\n")
    assert source.header == ["Fornavn", "E-mail", "Mobil"]


def test_a_first_row_with_an_email_is_data():
    source = read(b"Soren;s@example.dk\nAse;a@example.dk\n")
    assert source.header is None
    assert rows(source)[0] == (1, ["Soren", "s@example.dk"])


def test_two_rows_of_plain_text_are_not_guessed_to_have_a_header():
    source = read("Søren;Hansen\nÅse;Møller\n".encode())
    assert source.header is None
    assert len(rows(source)) == 2


def test_a_lone_row_of_text_is_a_header():
    assert read(b"email;navn\n").header == ["email", "navn"]


def test_has_header_overrides_the_guess_both_ways():
    forced_data = read(b"email;navn\ns@example.dk;Soren\n", has_header=False)
    assert forced_data.header is None
    assert rows(forced_data)[0] == (1, ["email", "navn"])
    forced_header = read(b"a@example.dk\nb@example.dk\n", has_header=True)
    assert forced_header.header == ["a@example.dk"]
    assert rows(forced_header) == [(2, ["b@example.dk"])]


def test_an_unreadable_header_that_the_caller_insists_on_raises():
    data = b"x" * (FIELD_LIMIT + 1) + b";navn\na@example.dk;Ib\n"
    with pytest.raises(CsvError, match="header"):
        read(data, has_header=True)


# -- malformed input ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10" + bytes(range(256)), id="png"
        ),
        pytest.param(random.Random(7).randbytes(10_000), id="random"),  # noqa: S311 - not a secret
        pytest.param("email;navn\r\na@example.dk;Åse\r\n".encode("utf-16"), id="utf-16"),
        pytest.param(b"email\n" + b"\x00" * 500, id="nul-padding"),
    ],
)
def test_a_file_that_is_not_text_is_not_csv(data):
    with pytest.raises(NotCsvError):
        read(data)


def test_an_excel_workbook_is_not_csv_and_the_message_says_so():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as workbook:
        workbook.writestr("xl/workbook.xml", "<workbook/>")
    with pytest.raises(NotCsvError, match="Excel"):
        read(buffer.getvalue())


def test_an_overlong_value_is_an_error_naming_its_row_and_the_next_rows_are_read():
    text = f"navn;email\nSøren;s@example.dk\n{'x' * (FIELD_LIMIT + 1)};x@example.dk\nÅse;a@x.dk\n"
    result = list(read(text.encode()))
    assert result[0] == Row(2, ["Søren", "s@example.dk"])
    assert result[1].number == 3
    assert result[1].error is not None
    assert "Row 3" in result[1].error
    assert f"{FIELD_LIMIT:,}" in result[1].error
    assert result[2] == Row(4, ["Åse", "a@x.dk"])


def test_an_unclosed_quote_is_reported_and_the_rows_it_swallowed_are_still_read():
    swallowed = ascii_rows(5000, start=100)
    assert len(swallowed) > FIELD_LIMIT
    text = f'navn;email;nr\nSøren;s@example.dk;1\n"Hans;h@example.dk;2\n{swallowed}Ib;i@x.dk;3\n'
    result = list(read(text.encode()))
    assert result[1].number == 3
    assert result[1].error is not None
    assert "quote" in result[1].error
    assert [row.error for row in result[2:]] == [None] * 5001
    assert result[2] == Row(4, ["Anders100", "anders100@example.dk", "1234"])
    assert result[-1] == Row(5004, ["Ib", "i@x.dk", "3"])


def test_a_quote_left_open_until_a_later_stray_quote_does_not_merge_rows():
    text = (
        'navn;email\n"Hans;h@example.dk\nSøren;s@example.dk\nIb "Bo" Jensen;i@x.dk\n"Åse";a@x.dk\n'
    )
    result = list(read(text.encode()))
    assert result[0].error is not None
    assert result[0].number == 2
    assert result[1:] == [
        Row(3, ["Søren", "s@example.dk"]),
        Row(4, ['Ib "Bo" Jensen', "i@x.dk"]),
        Row(5, ["Åse", "a@x.dk"]),
    ]


def test_text_after_a_closing_quote_on_one_line_is_read_as_excel_reads_it():
    source = read(b'navn;email\n"Soren" Hansen;s@example.dk\n"Ase" ;"a@x.dk"  \n')
    assert rows(source) == [(2, ["Soren Hansen", "s@example.dk"]), (3, ["Ase", "a@x.dk"])]


def test_text_after_a_closing_quote_in_a_multiline_value_is_an_error_for_its_row():
    result = list(read(b'navn;email\n"Soren\nHansen" x;s@example.dk\nAse;a@x.dk\n'))
    assert result[0].number == 2
    assert result[0].error is not None
    assert "Row 2: there is text after the closing quote" in result[0].error
    assert result[-1] == Row(4, ["Ase", "a@x.dk"])


def test_a_nul_character_in_one_row_is_an_error_for_that_row():
    data = b"navn;email\nSoren;s@example.dk\nA\x00se;a@x.dk\nBo;bo@x.dk\n"
    result = list(read(data + ascii_rows(50).encode()))
    assert result[0] == Row(2, ["Soren", "s@example.dk"])
    assert result[1].number == 3
    assert result[1].error is not None
    assert "Row 3" in result[1].error
    assert "NUL" in result[1].error
    assert result[2] == Row(4, ["Bo", "bo@x.dk"])


def test_a_line_too_long_to_buffer_is_an_error_and_reading_goes_on():
    data = b"email\na@example.dk\n" + b"x" * (2 * MAX_RECORD_CHARS) + b"\nb@example.dk\n"
    result = list(read(data))
    assert result[0] == Row(2, ["a@example.dk"])
    assert result[1].number == 3
    assert result[1].error is not None
    assert result[2] == Row(4, ["b@example.dk"])


# -- streaming ---------------------------------------------------------------------------


def test_a_50_mb_file_is_streamed_in_far_less_memory_than_its_size(tmp_path: Path):
    block = "".join(
        f"Søren {i};soren{i}@example.dk;+45 12 34 56 78;Ærøskøbing;{'Lorem ipsum ' * 14}\n"
        for i in range(1000)
    ).encode("cp1252")
    path = tmp_path / "big.csv"
    with path.open("wb") as file:
        file.write(b"navn;email;mobil;by;note\n")
        blocks = 50 * 1024 * 1024 // len(block)
        for _ in range(blocks):
            file.write(block)
    size = path.stat().st_size
    assert size > 49 * 1024 * 1024

    tracemalloc.start()
    try:
        with path.open("rb") as file:
            source = open_csv(file)
            count = errors = 0
            last = None
            for row in source:
                count += 1
                errors += row.error is not None
                last = row
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert (source.encoding, source.delimiter) == ("cp1252", ";")
    assert (count, errors) == (blocks * 1000, 0)
    assert last is not None
    assert last.number == count + 1
    assert last.values[:4] == ["Søren 999", "soren999@example.dk", "+45 12 34 56 78", "Ærøskøbing"]
    assert peak < 20 * 1024 * 1024, f"peak {peak:,} bytes for a {size:,} byte file"
