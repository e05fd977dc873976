"""Every built-in template at every dpi and size, rendered offline and decoded with zxing-cpp."""

from __future__ import annotations

import io
import re

import pytest

zplkit = pytest.importorskip("zplkit")
zxingcpp = pytest.importorskip("zxingcpp")
from PIL import Image  # noqa: E402

from drivers.printers.templates import download_format, fill, load_templates, recall_format  # noqa: E402
from gs1.encode import Element, element_string  # noqa: E402

TEMPLATES = load_templates()
VALUES = {
    "lot": {
        "gtin": "09501101530003",
        "lot": "ABCDEFGHIJ0123456789",
        "expiry": "2027-01-31",
        "quantity": "12345678",
        "description": "Paracetamol 500 mg",
    },
    "serial": {
        "gtin": "09501101530003",
        "serial": "SN_ABCDEFGHIJ012345>",
        "lot": "L0T-42",
        "expiry": "270131",
        "description": "Widget",
    },
    "sscc": {
        "sscc": "376104250021234569",
        "gtin": "09501101530003",
        "count": "12345678",
        "lot": "LOT-ABCDEFGHIJKLMNOP",
    },
}


def decode(
    zpl: str, dpi: int, size: str
) -> tuple[list[tuple[str, str]], tuple[int, int], list[object]]:
    w, h = TEMPLATES.get("lot", dpi, size).width_dots, TEMPLATES.get("lot", dpi, size).length_dots
    doc = zplkit.render(zpl, zplkit.Options(dpi=dpi, width=w, height=h))
    assert len(doc.labels) == 1
    img = Image.open(io.BytesIO(doc.labels[0].png()))
    found = zxingcpp.read_barcodes(img, text_mode=zxingcpp.TextMode.Plain)
    return [(r.symbology_identifier, r.text) for r in found], img.size, found


def expected(name: str, dpi: int, size: str) -> set[tuple[str, str]]:
    t = TEMPLATES.get(name, dpi, size)
    fmap = {f.name: f for f in t.fields}
    vals = {k: v for k, v in VALUES[name].items()}
    from gs1.encode import normalise

    out = set()
    for s in t.slots:
        if s.kind in ("gs1-128", "datamatrix"):
            els = [
                Element(str(fmap[f].ai), normalise(str(fmap[f].ai), vals[f], f)) for f in s.fields
            ]
            out.add(("]C1" if s.kind == "gs1-128" else "]d2", element_string(els)))
    return out


@pytest.mark.parametrize("key", sorted(TEMPLATES.templates), ids=lambda k: "_".join(map(str, k)))
def test_template_decodes_as_gs1(key: tuple[str, int, str]) -> None:
    name, dpi, size = key
    t = TEMPLATES.templates[key]
    decoded, (w, h), found = decode(fill(t, VALUES[name]), dpi, size)
    assert (w, h) == (t.width_dots, t.length_dots)
    assert set(decoded) == expected(name, dpi, size)
    assert len(decoded) == len(set(decoded))
    for r in found:
        p = r.position
        for pt in (p.top_left, p.top_right, p.bottom_left, p.bottom_right):
            assert 0 <= pt.x < w and 0 <= pt.y < h


def test_all_required_variants_exist() -> None:
    for name in ("lot", "serial", "sscc"):
        for dpi in (203, 300):
            for size in ("4x6", "4x2"):
                TEMPLATES.get(name, dpi, size)


def test_stored_format_renders_like_direct_fill() -> None:
    t = TEMPLATES.get("lot", 203, "4x6")
    direct, _, _ = decode(fill(t, VALUES["lot"]), 203, "4x6")
    stored, _, _ = decode(download_format(t) + recall_format(t, VALUES["lot"]), 203, "4x6")
    assert sorted(direct) == sorted(stored)


@pytest.mark.parametrize("evil", ["^XZ^XA^FDX", "~JA", "\\", "a\\5E", "é ^FS~HS", "line\r\n^XA"])
def test_injection_prints_as_text(evil: str) -> None:
    from zplkit.parse import parse

    t = TEMPLATES.get("lot", 203, "4x6")
    vals = dict(VALUES["lot"], description=evil)
    zpl = fill(t, vals)
    elements = parse(zpl).elements
    kinds = [e.kind for e in elements]
    assert "control_command" not in kinds and "control_character" not in kinds
    assert sum(1 for e in elements if bytes(e)[:3] == b"^XA") == 1
    plain = fill(t, dict(VALUES["lot"], description="SAFE"))
    assert len(re.findall(r"\^F[A-Z]", zpl)) == len(re.findall(r"\^F[A-Z]", plain))
    doc = zplkit.render(zpl, zplkit.Options(dpi=203, width=812, height=1218))
    assert len(doc.labels) == 1
