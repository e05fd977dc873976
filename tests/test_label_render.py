"""Every built-in template at every dpi and size, rendered offline and decoded with zxing-cpp."""

from __future__ import annotations

import io
import json
import re

import pytest

zplkit = pytest.importorskip("zplkit")
zxingcpp = pytest.importorskip("zxingcpp")
from PIL import Image  # noqa: E402

from drivers.printers.templates import (  # noqa: E402
    Template,
    download_format,
    fill,
    load_templates,
    recall_format,
)
from gateway.cli.main import main  # noqa: E402
from gs1.encode import Element, element_string, normalise  # noqa: E402
from tests.label_data import DATA, cases  # noqa: E402

TEMPLATES = load_templates()
VALUES = {name: sets["representative"] for name, sets in DATA.items()}


def decode(
    zpl: str, dpi: int, size: str
) -> tuple[list[tuple[str, str]], tuple[int, int], list[object]]:
    w, h = TEMPLATES.get("lot", dpi, size).width_dots, TEMPLATES.get("lot", dpi, size).length_dots
    doc = zplkit.render(zpl, zplkit.Options(dpi=dpi, width=w, height=h))
    assert len(doc.labels) == 1
    img = Image.open(io.BytesIO(doc.labels[0].png()))
    found = zxingcpp.read_barcodes(img, text_mode=zxingcpp.TextMode.Plain)
    return [(r.symbology_identifier, r.text) for r in found], img.size, found


def expected(t: Template, values: dict[str, str]) -> set[tuple[str, str]]:
    fmap = {f.name: f for f in t.fields}
    out = set()
    for s in t.slots:
        if s.kind in ("gs1-128", "datamatrix"):
            els = [
                Element(str(fmap[f].ai), normalise(str(fmap[f].ai), values[f], f))
                for f in s.fields
                if f in values
            ]
            if els:
                out.add(("]C1" if s.kind == "gs1-128" else "]d2", element_string(els)))
    return out


VARIANTS = [
    pytest.param(key, kind, id=f"{'_'.join(map(str, key))}-{kind.replace(' ', '-')}")
    for key in sorted(TEMPLATES.templates)
    for name, kind in cases()
    if name == key[0]
]


@pytest.mark.parametrize(("key", "kind"), VARIANTS)
def test_template_decodes_as_gs1_inside_the_label(
    key: tuple[str, int, str], kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Representative, maximum-length and minimal data: every symbol decodes, lies wholly
    inside the label with its quiet zone, and its text reads without errors."""
    name, dpi, size = key
    t = TEMPLATES.templates[key]
    values = DATA[name][kind]
    decoded, (w, h), found = decode(fill(t, values), dpi, size)
    assert (w, h) == (t.width_dots, t.length_dots)
    assert set(decoded) == expected(t, values)
    assert len(decoded) == len(set(decoded))
    for r in found:
        p = r.position
        xs = [pt.x for pt in (p.top_left, p.top_right, p.bottom_left, p.bottom_right)]
        ys = [pt.y for pt in (p.top_left, p.top_right, p.bottom_left, p.bottom_right)]
        margin = 2  # dots: the symbol's edge is never the label's edge
        assert min(xs) >= margin and max(xs) < w - margin, (r.text, xs)
        assert min(ys) >= margin and max(ys) < h - margin, (r.text, ys)
    dm = [sid + text for sid, text in decoded if sid == "]d2"]
    if dm:
        assert main(["parse", "--json", *dm]) == 0
        assert all(json.loads(x)["errors"] == [] for x in capsys.readouterr().out.splitlines())


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
