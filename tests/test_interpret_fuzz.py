"""interpret() never raises, and its output is always well-formed JSON with known codes."""

from __future__ import annotations

import json
from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from gs1.interpret import BarcodePattern, Interpretation, interpret

CODES = {
    "empty", "unparseable", "not_gs1", "check_digit", "invalid_date",
    "invalid_ai", "pairing", "digital_link",
}  # fmt: skip
PATTERNS = (
    BarcodePattern("location", r"LOC-(?P<value>[A-Z0-9]+)", "loc"),
    BarcodePattern("command", r"CMD(?P<value>.*)"),
)
AIMS = st.sampled_from(["", "]C1", "]C0", "]d2", "]d1", "]Q3", "]Q1", "]E0", "]E4", "]I1", "]e0"])
GS1ISH = st.text(alphabet="0123456789\x1dABCXYZ-/%?=&", max_size=60)
URLISH = st.builds(
    lambda path, q: f"https://id.gs1.org/{path}?{q}",
    st.text(alphabet="0123456789/ABC%", max_size=40),
    st.text(alphabet="0123456789=&ABC", max_size=30),
)
DATES = st.dates(min_value=date(1901, 1, 1), max_value=date(2199, 12, 31))


def check(r: Interpretation, text: str) -> None:
    assert r.input == text
    assert set(r.error_codes()) <= CODES, r.errors
    assert {w.split(":", 1)[0] for w in r.warnings} <= {"missing_separator"}
    assert json.loads(json.dumps(r.to_json())) == r.to_json()
    assert r.ok == (not r.errors)
    if r.gtin is not None:
        assert len(r.gtin) == 14 and r.gtin.isascii() and r.gtin.isdigit()
    if r.kind in ("location", "command"):
        assert r.ok and r.value is not None and r.pattern


@settings(max_examples=400)
@given(st.text(), DATES)
def test_arbitrary_text(text: str, today: date) -> None:
    check(interpret(text, PATTERNS, today), text)


@settings(max_examples=600)
@given(AIMS, st.one_of(GS1ISH, URLISH, st.text(max_size=30)), DATES)
def test_gs1_like_text(aim: str, body: str, today: date) -> None:
    text = aim + body
    check(interpret(text, PATTERNS, today), text)


@given(
    st.sampled_from(["11", "13", "15", "16", "17"]), st.text("0123456789", min_size=6, max_size=6)
)
def test_every_six_digit_date_is_a_date_or_invalid_date(ai: str, yymmdd: str) -> None:
    r = interpret("]C10109506000134352" + ai + yymmdd, today=date(2025, 6, 1))
    if r.ok:
        assert r.ais[1] == (ai, yymmdd)
    else:
        assert r.error_codes() == ("invalid_date",)
