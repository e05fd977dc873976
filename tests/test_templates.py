"""Template loading checks and filling rules."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from drivers.printers.templates import BUILTIN_DIR, TemplateError, fill, load_dir, load_templates
from gs1.encode import EncodeError

LOT = {"gtin": "09501101530003", "lot": "A1", "expiry": "2027-01-31"}


def site_copy(tmp_path: Path, edit: tuple[str, str] | None = None) -> Path:
    for f in ("lot.toml", "lot_203_4x6.zpl"):
        shutil.copy(BUILTIN_DIR / f, tmp_path / f)
    if edit:
        p = tmp_path / "lot_203_4x6.zpl"
        p.write_text(p.read_text().replace(*edit))
    return tmp_path


@pytest.mark.parametrize(
    ("edit", "why"),
    [
        (("^CI28", ""), "UTF-8"),
        (("^PW812", "^PW800"), "\\^PW812"),
        (("^BXN,10,200,,,,_", "^BXN,10,200"), "escape character"),
        (('^FN8"datamatrix"', '^FN8"data/matrix"'), "prompts"),
        (('^FN9"summary"', '^FN12"summary"'), "not declared"),
        (("^BCN,170,N,N,N^FN6", "^A0N,30,30^FN6"), "no \\^BC"),
    ],
)
def test_loader_refuses_broken_templates(tmp_path: Path, edit: tuple[str, str], why: str) -> None:
    with pytest.raises(TemplateError, match=why):
        load_dir(site_copy(tmp_path, edit))


def test_site_directory_overrides_builtin(tmp_path: Path) -> None:
    site_copy(tmp_path, ("^FO30,30^", "^FO31,30^"))
    t = load_templates([tmp_path]).get("lot", 203, "4x6")
    assert "^FO31,30" in t.zpl and t.source.startswith(str(tmp_path))


def test_fill_rules() -> None:
    t = load_templates().get("lot", 203, "4x6")
    with pytest.raises(EncodeError, match="unknown field"):
        fill(t, {**LOT, "lott": "x"})
    with pytest.raises(EncodeError, match="required"):
        fill(t, {"gtin": LOT["gtin"], "expiry": "2027-01-31"})
    # optional quantity missing: the (30) element is simply absent, no empty symbol
    z = fill(t, LOT)
    assert "(30)" not in z and "^FN" not in z
    with pytest.raises(TemplateError, match="unknown template"):
        load_templates().get("nope", 203, "4x6")


def test_too_wide_gs1_128_is_refused(tmp_path: Path) -> None:
    site_copy(tmp_path, ("^FO40,540^BY2", "^FO40,540^BY3"))
    t = load_dir(tmp_path)[("lot", 203, "4x6")]
    with pytest.raises(EncodeError, match="wider than the label"):
        fill(t, {**LOT, "lot": "ABCDEFGHIJ0123456789", "quantity": "12345678"})


def test_too_large_datamatrix_is_refused(tmp_path: Path) -> None:
    site_copy(tmp_path, ("^FO40,830^BXN,10,200", "^FO560,830^BXN,10,200"))
    t = load_dir(tmp_path)[("lot", 203, "4x6")]
    fill(t, LOT)  # 18x18 modules: 190 dots from x=560 fit in 812
    with pytest.raises(EncodeError, match=r"DataMatrix .* needs 26x26 modules"):
        fill(t, {**LOT, "lot": "ABCDEFGHIJKLMNOPQRST", "quantity": "12345678"})


def test_datamatrix_size_follows_the_ecc200_table() -> None:
    from drivers.printers.zpl import datamatrix_codewords, datamatrix_side

    assert datamatrix_codewords("_10109501101530003") == 9  # FNC1 + 8 digit pairs
    assert datamatrix_codewords("_121A__B_1") == 6  # FNC1, "21", A, "_", B, FNC1
    assert datamatrix_side("12345") == 10  # 3 codewords: the smallest symbol
    assert datamatrix_side("1234567") == 12  # 4 codewords
    assert datamatrix_side("A" * 62) == 32 and datamatrix_side("A" * 63) == 36
    assert datamatrix_side("A" * 1559) is None


def test_lot_without_expiry_prints_without_17() -> None:
    t = load_templates().get("lot", 203, "4x6")
    z = fill(t, {"gtin": LOT["gtin"], "lot": "GLOVES"})
    assert "(17)" not in z and "17" not in z.split("^FD_1")[1].split("^FS")[0][16:18]
    assert "EXP" not in z and "QTY" not in z


def test_text_captions() -> None:
    from drivers.printers.templates import render_text

    t = load_templates().get("lot", 203, "4x6")
    z = fill(t, {**LOT, "quantity": "12"})
    assert "EXP 2027-01-31   QTY 12" in z  # the date as a date, not 270131
    assert "QTY" not in fill(t, LOT) and "EXP 2027-01-31^FS" in fill(t, LOT)
    z = fill(t, {"gtin": LOT["gtin"], "lot": "A1", "quantity": "5"})
    assert "^FDQTY 5^FS" in z
    assert render_text("A {a}  B {b}  fixed", {"b": "2"}) == "B 2  fixed"
    assert "EXP 2027-01^FS" in fill(t, {**LOT, "expiry": "270100"})  # day 00: the month


def test_wrapped_captions_break_between_elements_and_keep_backslashes() -> None:
    t = load_templates().get("lot", 203, "4x6")
    z = fill(t, {**LOT, "description": "a\\b"})
    assert "^FDa\\5C\\5Cb^FS" in z  # in a ^FB block "\\\\" prints one backslash
    assert "^FD(01)09501101530003 (17)270131 (10)A1^FS" in z  # the DataMatrix caption
    assert "^FD(01)09501101530003(17)270131^FS" in z  # under a linear symbol: no spaces
