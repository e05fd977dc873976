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
        fill(t, {"gtin": LOT["gtin"], "lot": "A"})
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
