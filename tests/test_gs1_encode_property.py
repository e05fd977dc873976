"""One set of GS1 rules: a label is produced if and only if its data reads back cleanly.

Random field sets, valid and invalid (check digits, impossible dates, characters
outside set 82, lengths, pairing), go through the real templates. The oracle is the
reader: the element string the label would encode, parsed by ``gs1.interpret``.
"""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.printers.templates import fill, load_templates
from gs1.encode import EncodeError
from gs1.interpret import interpret
from gs1.keys import check_digit
from gs1.rules import GS, PREDEFINED_LENGTH

TEMPLATES = load_templates()
TODAY = date.today()

_CSET82 = "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"


def _gtin() -> st.SearchStrategy[str]:
    body = st.text("0123456789", min_size=13, max_size=13)
    good = body.map(lambda b: b + str(check_digit(b)))
    bad = body.map(lambda b: b + str((check_digit(b) + 1) % 10))
    return st.one_of(good, good, bad)


def _yymmdd() -> st.SearchStrategy[str]:
    return st.builds(
        lambda y, m, d: f"{y:02d}{m:02d}{d:02d}",
        st.integers(0, 99),
        st.integers(0, 13),
        st.integers(0, 32),
    )


def _alnum() -> st.SearchStrategy[str]:
    valid = st.text(_CSET82, min_size=1, max_size=20)
    invalid = st.text(_CSET82 + "^~\\ é#$", min_size=1, max_size=22)
    return st.one_of(valid, valid, invalid)


def _count() -> st.SearchStrategy[str]:
    return st.one_of(
        st.text("0123456789", min_size=1, max_size=8), st.text("0123456789a", max_size=9)
    )


FIELDS = {
    "lot": {"gtin": _gtin(), "lot": _alnum(), "expiry": _yymmdd(), "quantity": _count()},
    "serial": {"gtin": _gtin(), "serial": _alnum(), "lot": _alnum(), "expiry": _yymmdd()},
    "sscc": {
        "sscc": st.text("0123456789", min_size=17, max_size=17).map(
            lambda b: b + str(check_digit(b))
        ),
        "gtin": _gtin(),
        "count": _count(),
        "lot": _alnum(),
    },
}


def _element_string(name: str, values: dict[str, str]) -> str:
    """What the label encodes, built without the encoder: fields in template order.

    Like the encoder, surrounding whitespace of a typed value is not data.
    """
    t = TEMPLATES.get(name, 203, "4x6")
    parts = [(str(f.ai), values[f.name].strip()) for f in t.fields if f.ai and values.get(f.name)]
    out = []
    for i, (ai, v) in enumerate(parts):
        out.append(ai + v)
        if ai[:2] not in PREDEFINED_LENGTH and i < len(parts) - 1:
            out.append(GS)
    return "".join(out)


@st.composite
def field_sets(draw: st.DrawFn) -> tuple[str, dict[str, str]]:
    name = draw(st.sampled_from(sorted(FIELDS)))
    t = TEMPLATES.get(name, 203, "4x6")
    required = {f.name for f in t.fields if f.required}
    values: dict[str, str] = {}
    for field, strategy in FIELDS[name].items():
        if field in required or draw(st.booleans()):
            values[field] = draw(strategy)
    return name, values


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field_sets())
def test_label_is_produced_iff_its_element_string_reads_without_errors(
    case: tuple[str, dict[str, str]],
) -> None:
    name, values = case
    reading = interpret("]d2" + _element_string(name, values), today=TODAY)
    try:
        fill(TEMPLATES.get(name, 203, "4x6"), values)
        produced = True
    except EncodeError as exc:
        produced = False
        why = str(exc)
    if produced:
        assert not reading.errors, (values, reading.errors)
    else:
        assert reading.errors, (values, why)


@pytest.mark.parametrize(
    "expiry", ["2031-02-30", "2027-02-29", "270431", "310230", "271301", "2090-01-01"]
)
def test_impossible_or_unreadable_expiry_is_refused(expiry: str) -> None:
    t = TEMPLATES.get("lot", 203, "4x6")
    with pytest.raises(EncodeError, match="expiry"):
        fill(t, {"gtin": "09501101530003", "lot": "A1", "expiry": expiry})


def test_leap_day_and_day_zero_print() -> None:
    t = TEMPLATES.get("lot", 203, "4x6")
    for expiry in ("2028-02-29", "280229", "270200"):
        assert "^XA" in fill(t, {"gtin": "09501101530003", "lot": "A1", "expiry": expiry})
