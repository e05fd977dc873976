"""``traceway print | printers | jobs | label preview``: what a user sees."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from drivers.printers.templates import fill, load_templates
from gateway import print_queue as pq
from gateway.cli import main
from gateway.cli.printing import JOB_STATES
from gateway.store.db import open_database
from gateway.store.schema import outbox, print_jobs

LOT = {"gtin": "09501101530003", "lot": "L1", "expiry": "2027-01-31"}


def config(tmp: Path, printers: str = "") -> Path:
    cfg = tmp / "gw.toml"
    cfg.write_text(
        f"""
[gateway]
site = "s1"
id = "g1"
[storage]
path = "{tmp / "gw.db"}"
[stations.ws]
step = "receiving"
location = "DOCK"
[printers.file]
transport = "file"
path = "{tmp / "labels.zpl"}"
{printers}
"""
    )
    open_database(tmp / "gw.db").dispose()
    return cfg


def test_job_states_match_the_queue() -> None:
    assert JOB_STATES == pq.STATES


def test_print_needs_no_printer_name_when_there_is_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = config(tmp_path)
    fields = [f"--field={k}={v}" for k, v in LOT.items()]
    assert main(["print", "--config", str(cfg), "--template", "lot", *fields]) == 0
    assert "queued job 1" in capsys.readouterr().out
    two = config(tmp_path, '[printers.other]\ntransport = "file"\npath = "x.zpl"')
    assert main(["print", "--config", str(two), "--template", "lot", *fields]) == 2
    assert "give --printer (known: file, other)" in capsys.readouterr().err


def test_jobs_and_printers_have_headers_items_and_no_confirmed_file_jobs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = config(tmp_path)
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'gw.db'}")
    with engine.begin() as conn:
        conn.execute(
            sa.insert(outbox).values(
                seq=41, event_id="e-41", kind="event", topic="t", payload="{}", created_at=1.0
            )
        )
        a = pq.enqueue(
            conn, idempotency_key="a", printer="file", template="lot", fields=LOT, event_id="e-41"
        )
        b = pq.enqueue(
            conn, idempotency_key="b", printer="file", template="lot", fields={**LOT, "lot": "X"}
        )
        conn.execute(sa.update(print_jobs).where(print_jobs.c.id == a).values(state="confirmed"))
        conn.execute(
            sa.update(print_jobs)
            .where(print_jobs.c.id == b)
            .values(state="failed", error="expiry: not a calendar date")
        )
    assert main(["jobs", "--config", str(cfg)]) == 0
    head, *rows = capsys.readouterr().out.splitlines()
    assert head.split() == [
        "JOB",
        "PRINTER",
        "TEMPLATE",
        "STATE",
        "UPDATED",
        "SCAN",
        "ITEM",
        "NOTE",
    ]
    by_id = {int(r.split()[0]): r for r in rows}
    assert " sent " in by_id[a] and "confirmed" not in by_id[a]  # nothing confirms a file
    assert "seq=41" in by_id[a] and "09501101530003 lot L1" in by_id[a]
    assert "manual" in by_id[b] and "failed" in by_id[b]
    assert main(["jobs", "--config", str(cfg), "--reprint", str(b)]) == 1
    assert "failed on its data" in capsys.readouterr().err
    assert main(["printers", "--config", str(cfg)]) == 0
    head, line = capsys.readouterr().out.splitlines()
    assert head.split() == ["PRINTER", "LINK", "DPI", "SIZE", "JOBS"]
    assert "sent=1" in line and "failed=1" in line and "confirmed" not in line
    with pytest.raises(SystemExit) as exc:
        main(["jobs", "--config", str(cfg), "--state", "bogus"])
    assert exc.value.code == 2
    assert "invalid choice: 'bogus'" in capsys.readouterr().err


def test_preview_to_a_missing_directory_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("zplkit")
    fields = [f"--field={k}={v}" for k, v in LOT.items()]
    out = str(tmp_path / "missing" / "x.png")
    assert main(["label", "preview", "--template", "lot", *fields, "-o", out]) == 1
    err = capsys.readouterr().err
    assert err == f"error: cannot write {out}: No such file or directory\n"


def test_preview_renders_a_zpl_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("zplkit")
    t = load_templates().get("lot", 203, "4x6")
    zpl = tmp_path / "labels.zpl"
    zpl.write_text(fill(t, LOT) + "\n" + fill(t, {**LOT, "lot": "L2"}) + "\n")
    out = tmp_path / "label.png"
    assert main(["label", "preview", "--zpl", str(zpl), "-o", str(out)]) == 0
    assert "wrote 2 of 2 label(s)" in capsys.readouterr().out
    one, two = tmp_path / "label-1.png", tmp_path / "label-2.png"
    assert one.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and two.exists()
    assert one.read_bytes() != two.read_bytes()
    assert main(["label", "preview", "--zpl", str(zpl), "--index", "2", "-o", str(out)]) == 0
    assert out.read_bytes() == two.read_bytes()
    assert main(["label", "preview", "--zpl", str(zpl), "--index", "3", "-o", str(out)]) == 1
    assert "holds 2 label(s)" in capsys.readouterr().err
