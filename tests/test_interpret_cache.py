"""Interpreter: compiled patterns and a bounded LRU cache keyed by (text, today)."""

from __future__ import annotations

from datetime import date

import pytest

from gs1.dates import century_year, parse_yymmdd, valid_hhmm
from gs1.interpret import BarcodePattern, Interpreter, interpret

D1, D2 = date(2025, 6, 1), date(2025, 6, 2)
CODE = "]C10109506000134352172012251" + "0ABC123"


def test_same_object_for_same_text_and_day() -> None:
    it = Interpreter()
    a = it.interpret(CODE, D1)
    assert it.interpret(CODE, D1) is a
    assert a == interpret(CODE, today=D1)


def test_different_day_is_a_different_entry() -> None:
    it = Interpreter()
    a = it.interpret(CODE, D1)
    b = it.interpret(CODE, D2)
    assert a is not b and a == b and len(it) == 2


def test_cache_is_bounded_lru() -> None:
    it = Interpreter(cache_size=2)
    a = it.interpret("A1", D1)
    it.interpret("B1", D1)
    assert it.interpret("A1", D1) is a  # refresh A1: B1 is now the oldest
    it.interpret("C1", D1)
    assert len(it) == 2
    assert it.interpret("A1", D1) is a
    b_again = it.interpret("B1", D1)
    assert len(it) == 2 and b_again == interpret("B1", today=D1)


def test_cache_size_zero_caches_nothing() -> None:
    it = Interpreter(cache_size=0)
    assert it.interpret(CODE, D1) is not it.interpret(CODE, D1)
    assert len(it) == 0


def test_default_today_is_used() -> None:
    assert Interpreter().interpret(CODE).expiry == date(2020, 12, 25)


def test_patterns_are_used_and_validated() -> None:
    it = Interpreter([BarcodePattern("location", r"L(?P<value>\d+)", "loc")])
    r = it.interpret("]C0L42", D1)
    assert (r.kind, r.value, r.pattern) == ("location", "42", "loc")
    with pytest.raises(ValueError, match="bad"):
        Interpreter([BarcodePattern("command", "[", "bad")])


@pytest.mark.parametrize(
    ("yy", "today", "year"),
    [(25, date(2025, 1, 1), 2025), (75, date(2025, 1, 1), 2075), (76, date(2025, 1, 1), 1976),
     (30, date(2080, 1, 1), 2130), (31, date(2080, 1, 1), 2031), (0, date(2099, 1, 1), 2100)],
)  # fmt: skip
def test_century_year(yy: int, today: date, year: int) -> None:
    assert century_year(yy, today) == year


def test_parse_yymmdd_edges() -> None:
    assert parse_yymmdd("250200", D1, day_zero=True) == date(2025, 2, 28)
    assert parse_yymmdd("250200", D1, day_zero=False) is None
    assert parse_yymmdd("2502", D1, day_zero=True) is None
    assert parse_yymmdd("25O201", D1, day_zero=True) is None


@pytest.mark.parametrize(("text", "ok"), [("2359", True), ("2400", False), ("1260", False),
                                          ("12", True), ("123059", True), ("123060", False)])  # fmt: skip
def test_valid_hhmm(text: str, ok: bool) -> None:
    assert valid_hhmm(text) is ok
