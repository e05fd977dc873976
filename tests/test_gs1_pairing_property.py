"""``pairing_errors`` (cached by the AIs present) says exactly what a plain reading says."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gs1.rules import _EXCLUSIVE, Element, _requirement, pairing_errors

_AIS = ["00", "01", "02", "10", "11", "17", "21", "37", "240", "254", "3103", "3303", "414",
        "420", "421", "4303", "4302", "8006", "8026", "8017", "8018", "4326", "7003"]  # fmt: skip


def _plain(elements: list[Element]) -> list[str]:
    """The rules read element by element, with no cache (the specification)."""
    present = {e.ai for e in elements}
    errors: list[str] = []
    seen: dict[str, str] = {}
    for e in elements:
        if e.ai in seen:
            if seen[e.ai] != e.value:
                errors.append(f"pairing: AI ({e.ai}) occurs twice with different values")
            continue
        seen[e.ai] = e.value
        need = _requirement(e.ai)
        if need and not present.intersection(need):
            alts = " or ".join(f"({a})" for a in need)
            errors.append(f"pairing: AI ({e.ai}) requires {alts} in the same barcode")
    for a, b in _EXCLUSIVE:
        if a in present and b in present:
            errors.append(f"pairing: AIs ({a}) and ({b}) must not occur together")
    return errors


@given(st.lists(st.tuples(st.sampled_from(_AIS), st.sampled_from(["A", "B"])), max_size=6))
def test_pairing_errors_equal_the_plain_reading(pairs: list[tuple[str, str]]) -> None:
    elements = [Element(ai, value) for ai, value in pairs]
    assert pairing_errors(elements) == _plain(elements)
    assert pairing_errors(elements) == _plain(elements)  # again, from the cache


def test_a_cached_answer_is_not_shared_between_calls() -> None:
    first = pairing_errors([Element("10", "A")])
    first.append("changed by the caller")
    assert pairing_errors([Element("10", "A")]) == [
        "pairing: AI (10) requires (01) or (02) or (8006) or (8026) in the same barcode"
    ]
