"""``traceway parse``: JSON lines, escapes, exit codes, patterns from a config file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.cli import main

GOOD = r"]C10109506000134352\x1d17201225\x1d10ABC123"


def lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    out = capsys.readouterr().out
    return [json.loads(line) for line in out.splitlines()]


def test_json_one_object_per_line_with_escapes(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["parse", "--json", GOOD, "0109506000134352<GS>10LOT7", "96385074"])
    assert rc == 0
    objs = lines(capsys)
    assert len(objs) == 3
    first = objs[0]
    assert first["input"] == "]C10109506000134352\x1d17201225\x1d10ABC123"
    assert (first["symbology"], first["kind"], first["gtin"]) == ("]C1", "gs1", "09506000134352")
    assert (first["lot"], first["expiry"], first["errors"]) == ("ABC123", "2020-12-25", [])
    assert first["ais"] == {"01": "09506000134352", "17": "201225", "10": "ABC123"}
    assert objs[1]["lot"] == "LOT7" and objs[2]["gtin"] == "00000096385074"


def test_exit_1_when_any_barcode_has_errors(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["parse", "--json", GOOD, "]C10109506000134353"])
    assert rc == 1
    objs = lines(capsys)
    assert objs[0]["errors"] == []
    assert objs[1]["errors"] == ["check_digit: GTIN 09506000134353 check digit should be 2"]


def test_pretty_output_is_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["parse", "hello"]) == 1
    out = capsys.readouterr().out
    assert json.loads(out)["kind"] == "unknown" and "\n  " in out


CONFIG = """
[gateway]
site = "s1"
id = "g1"

[stations.dock]
step = "receiving"

[[patterns]]
kind = "location"
regex = "LOC-(?P<value>[A-Z0-9-]+)"
name = "loc"
"""


def test_config_patterns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "gw.toml"
    cfg.write_text(CONFIG, encoding="utf-8")
    assert main(["parse", "--json", "--config", str(cfg), "]C0LOC-A-1"]) == 0
    (obj,) = lines(capsys)
    assert (obj["kind"], obj["value"], obj["pattern"]) == ("location", "A-1", "loc")


def test_bad_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "gw.toml"
    cfg.write_text(CONFIG.replace('"receiving"', '"juggling"'), encoding="utf-8")
    assert main(["parse", "--json", "--config", str(cfg), "x"]) == 2
    captured = capsys.readouterr()
    assert "gw.toml" in captured.err and captured.out == ""
    assert main(["parse", "--config", str(tmp_path / "missing.toml"), "x"]) == 2
