"""Every built-in label, at every dpi and size, reads back through ``traceway parse``.

The element strings are recovered from the ZPL itself (``^BC`` invocation codes, ``^BX``
escapes), independently of the encoder, and handed to the CLI as a scanner would
transmit them (AIM id, GS separators).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from drivers.printers.templates import fill, load_templates
from gateway.cli.main import main
from gs1.encode import EncodeError
from tests.label_data import DATA, cases

TEMPLATES = load_templates()
_FIELD = re.compile(r"\^(BC|BX)[^\^]*(?:\^[A-Z]{2}[^\^]*)*?\^FD(.*?)\^FS")


def code128_text(data: str) -> str:
    """``^BC`` field data -> transmitted text (``]C1`` for a leading FNC1, GS for the others)."""
    out: list[str] = []
    i = 0
    while i < len(data):
        two = data[i : i + 2]
        if two in (">;", ">:", ">6", ">5"):
            i += 2
        elif two == ">8":
            out.append("]C1" if not out else "\x1d")
            i += 2
        elif two == ">0":
            out.append(">")
            i += 2
        else:
            out.append(data[i])
            i += 1
    return "".join(out)


def datamatrix_text(data: str) -> str:
    """``^BX`` field data with escape ``_`` -> transmitted text (``]d2`` for the leading FNC1)."""
    out: list[str] = []
    i = 0
    while i < len(data):
        if data[i] == "_":
            out.append(("]d2" if not out else "\x1d") if data[i + 1] == "1" else "_")
            i += 2
        else:
            out.append(data[i])
            i += 1
    return "".join(out)


def symbols(zpl: str) -> list[str]:
    """Transmitted text of every barcode in a filled label."""
    found = []
    for kind, data in _FIELD.findall(zpl):
        found.append(code128_text(data) if kind == "BC" else datamatrix_text(data))
    return found


def test_recovery_helpers() -> None:
    assert code128_text(">;>80109501101530003>8>610A>0B") == "]C10109501101530003\x1d10A>B"
    assert datamatrix_text("_10109501101530003_121S__1") == "]d20109501101530003\x1d21S_1"


def parse(texts: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[dict[str, Any]]]:
    """``traceway parse --json TEXT...``: exit code and one object per text."""
    rc = main(["parse", "--json", *texts])
    return rc, [json.loads(line) for line in capsys.readouterr().out.splitlines()]


VARIANTS = [
    pytest.param(key, kind, id=f"{'_'.join(map(str, key))}-{kind.replace(' ', '-')}")
    for key in sorted(TEMPLATES.templates)
    for name, kind in cases()
    if name == key[0]
]


@pytest.mark.parametrize(("key", "kind"), VARIANTS)
def test_every_label_parses_without_errors(
    key: tuple[str, int, str], kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each symbol reads without errors, except that a linear symbol holding half of a
    split label may lack its GTIN (AI pairing is a property of the label, as on GS1
    logistic labels); the label's element strings together read without any error."""
    name = key[0]
    t = TEMPLATES.templates[key]
    values = DATA[name][kind]
    zpl = fill(t, values)  # every data set fits every variant: refusing is a failure
    texts = symbols(zpl)
    assert texts, "a label without a barcode"
    _, out = parse(texts, capsys)
    for text, o in zip(texts, out, strict=True):
        errors = o["errors"]
        if text.startswith("]d2"):
            assert errors == [], text  # a DataMatrix always carries the whole label
        else:
            assert all(e.startswith("pairing:") for e in errors), (text, errors)
    whole = "]C1" + "\x1d".join(t[3:] for t in texts)
    rc, (label,) = parse([whole], capsys)
    assert (rc, label["errors"], label["warnings"]) == (0, [], [])
    fields = {f.name: f for f in t.fields}
    for fname, value in values.items():
        ai = fields[fname].ai
        if ai is None:
            continue
        assert ai in label["ais"], f"{fname} ({ai}) is in no symbol"
        if ai == "17" and "-" in value:
            value = value[2:4] + value[5:7] + value[8:10]
        assert label["ais"][ai] == value


@pytest.mark.parametrize("expiry", ["2031-02-30", "2027-02-29", "270431"])
def test_impossible_expiry_is_never_printed(expiry: str) -> None:
    for key, t in TEMPLATES.templates.items():
        if "expiry" in t.field_names:
            with pytest.raises(EncodeError):
                fill(t, {**DATA[key[0]]["representative"], "expiry": expiry})
