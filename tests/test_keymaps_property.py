"""Property: for every layout, decode(encode(s)) == s over the supported character set."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.scanners.keyboard_decoder import KeyboardDecoder
from drivers.scanners.keyboard_encoder import as_tuples, encode, supported_chars
from drivers.scanners.keymaps import LAYOUTS, get_layout

GS = "\x1d"
#: GS1 character set 82 plus GS: what a GS1 barcode can contain.
GS1_CHARSET = frozenset(string.ascii_letters + string.digits + "!\"%&'()*+,-./:;<=>?_" + GS)
#: Substitute characters scanners are commonly set to send for GS (not in the GS1 set).
SUBSTITUTES = ("|", "~", "#", "@", "^", "$", "§")


def decode_all(layout: str, text: str, **kw: object) -> list[str]:
    lay = get_layout(layout)
    sub = str(kw.get("gs_substitute", ""))
    dec = KeyboardDecoder(lay, gs_substitute=sub, capslock=bool(kw.get("capslock_at_open")))
    out = []
    for ty, code, value, t in as_tuples(
        encode(
            text,
            lay,
            gs=kw.get("gs", "ctrl"),  # type: ignore[arg-type]
            gs_substitute=sub,
            capslock=bool(kw.get("capslock_at_open")),
            toggle_capslock=bool(kw.get("toggle_capslock")),
        )
    ):
        out.extend(s.text for s in dec.feed(ty, code, value, t) if s.error is None)
    return out


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_gs1_charset_typeable_on_every_layout(layout: str) -> None:
    assert supported_chars(get_layout(layout)) >= GS1_CHARSET


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, str, dict[str, object]]:
    layout = draw(st.sampled_from(sorted(LAYOUTS)))
    lay = get_layout(layout)
    gs = draw(st.sampled_from(["ctrl", "alt", "substitute"]))
    kw: dict[str, object] = {"gs": gs}
    alphabet = sorted(supported_chars(lay))
    if gs == "substitute":
        sub = draw(st.sampled_from([c for c in SUBSTITUTES if c in supported_chars(lay)]))
        kw["gs_substitute"] = sub
        alphabet = [c for c in alphabet if c != sub]
    if gs == "ctrl" and "]" not in supported_chars(lay):
        kw["gs"] = "alt"
    kw["capslock_at_open"] = draw(st.booleans())
    kw["toggle_capslock"] = draw(st.booleans()) and not kw["capslock_at_open"]
    text = draw(st.text(alphabet=alphabet, min_size=1, max_size=60))
    return layout, text, kw


@settings(max_examples=400, deadline=None)
@given(cases())
def test_roundtrip_supported_chars(case: tuple[str, str, dict[str, object]]) -> None:
    layout, text, kw = case
    assert decode_all(layout, text, **kw) == [text]


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(sorted(LAYOUTS)),
    st.text(alphabet=sorted(GS1_CHARSET), min_size=1, max_size=80),
)
def test_roundtrip_gs1_with_aim_prefix_alt_codes(layout: str, data: str) -> None:
    text = "]d2" + data
    assert decode_all(layout, text, gs="alt") == [text]
