"""Event payloads are encoded with orjson: the same text the standard library writes.

``gateway.pipeline._to_json`` replaced ``json.JSONEncoder(separators=(",", ":"),
ensure_ascii=False)``; consumers (the central service, EPCIS export, deduplication by
byte-identical retransmission) must not see a difference.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.pipeline import _to_json

_STDLIB = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

# Text as a scan can carry it: any character but a lone surrogate (readers decode with
# errors="replace"; the phone protocol refuses one), control characters included.
_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
_SCALARS = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | _TEXT


def _tree(leaves: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaves,
        lambda kids: (
            st.lists(kids, max_size=4)
            | st.dictionaries(_TEXT | st.integers(-1000, 1000), kids, max_size=4)
        ),
        max_leaves=25,
    )


@settings(max_examples=400)
@given(st.dictionaries(_TEXT, _tree(_SCALARS), max_size=6))
def test_payload_text_is_the_standard_librarys(payload: dict[str, Any]) -> None:
    assert _to_json(payload) == _STDLIB(payload)


@settings(max_examples=200)
@given(
    st.dictionaries(
        _TEXT, _tree(_SCALARS | st.floats(allow_nan=False, allow_infinity=False)), max_size=6
    )
)
def test_payloads_with_numbers_read_back_the_same(payload: dict[str, Any]) -> None:
    """Floats may be written differently (``1e16`` against ``1e+16``): the value is the same."""
    assert json.loads(_to_json(payload)) == json.loads(_STDLIB(payload))


def test_a_scan_with_a_group_separator_and_accents() -> None:
    payload = {"scan": {"raw": "]C1010950600013435210AB\x1d21Ä€\u2028"}, "quantity": 2.5}
    assert _to_json(payload) == _STDLIB(payload)
    assert "\\u001d" in _to_json(payload) and "Ä€" in _to_json(payload)
