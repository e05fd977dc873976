"""What a new user trips over on the command line (issue 12, items 1, 9, 10, 13, 14, 18).

One gateway per database (a lock the kernel releases on death); every file the config
names checked before start; one line instead of a traceback for a corrupt database; the
demo keeps its state instead of deleting unsent events; plain words for an empty outbox.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.cli.exit_codes import ExitCode
from gateway.cli.main import main
from gateway.cli.outbox import describe
from gateway.config import load_config, parse_config
from gateway.store.db import open_database
from gateway.store.lock import DatabaseInUse, acquire_instance_lock, lock_path
from tests.conftest import free_port
from tests.gw_util import GatewayProcess

EXIT_CONFIG, EXIT_DATABASE, EXIT_IN_USE = ExitCode.CONFIG, ExitCode.DATABASE, ExitCode.IN_USE
ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "gateway.cli"]


def _config(tmp: Path, scan_port: int = 0, extra: str = "") -> Path:
    """A gateway without a broker; a TCP scanner listening on ``scan_port`` when given."""
    scanner = (
        f"""
[scanners.tunnel]
type = "tcp"
station = "dock"
mode = "listen"
port = {scan_port}
"""
        if scan_port
        else ""
    )
    cfg = tmp / "gw.toml"
    cfg.write_text(
        f"""
[gateway]
site = "s1"
id = "gw1"

[broker]
enabled = false

[storage]
path = "state/gw.db"

[stations.dock]
step = "receiving"
unknown_gtin = "accept"
{scanner}
[printers.file]
transport = "file"
path = "state/labels.zpl"
{extra}
"""
    )
    return cfg


def _run(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False
    )


# ---------------------------------------------------------------- 1. one gateway per database


def test_second_run_refused_readers_welcome_and_sigkill_leaves_no_stale_lock(
    tmp_path: Path,
) -> None:
    port = free_port()
    cfg = _config(tmp_path, port)
    db = tmp_path / "state" / "gw.db"
    first = GatewayProcess(cfg, tmp_path / "first.log")
    first.start(wait_port=port)
    try:
        assert first.proc is not None
        second = _run(["run", "--config", str(cfg)])
        assert second.returncode == EXIT_IN_USE, second.stderr
        assert second.stderr.strip().splitlines() == [
            f"another traceway (pid {first.proc.pid}) is using {db}"
        ]
        assert first.alive(), "the running gateway is left alone"
        for read_only in (["outbox"], ["jobs"], ["printers"]):
            r = _run([*read_only, "--config", str(cfg)])
            assert r.returncode == 0, (read_only, r.stderr)
        first.kill()  # SIGKILL: no clean-up, the lock file stays behind
        assert lock_path(db).exists()
        third = GatewayProcess(cfg, tmp_path / "third.log")
        third.start(wait_port=port)
        try:
            assert third.alive()
        finally:
            assert third.stop() == 0
    finally:
        if first.alive():
            first.kill()


def test_lock_in_process(tmp_path: Path) -> None:
    db = tmp_path / "sub" / "gw.db"
    with acquire_instance_lock(db) as lock:
        assert lock.path.read_text().strip() == str(os.getpid())
        with pytest.raises(DatabaseInUse, match=rf"pid {os.getpid()}\) is using"):
            acquire_instance_lock(db)
    acquire_instance_lock(db).release()  # released: free again


# ---------------------------------------------------------------- 9. files the config names


def _problems(cfg: Path) -> tuple[int, list[str]]:
    r = _run(["check-config", str(cfg)])
    return r.returncode, r.stderr.strip().splitlines()


@pytest.mark.parametrize(
    ("extra", "key", "says"),
    [
        ('[cache]\nseed_products = "nope/products.csv"\n', "cache.seed_products", "not found"),
        ('[cache]\nseed_lots = "lots.csv"\n', "cache.seed_lots", "lots.csv:2: GTIN '123'"),
        ('[cache]\nseed_serials = "bin.csv"\n', "cache.seed_serials", "not UTF-8"),
        (
            '[scanners.r]\ntype = "replay"\nstation = "dock"\npath = "scans.txt"\n',
            "scanners.r.path",
            "not found",
        ),
        (
            '[printers.z]\ntransport = "file"\npath = "no/such/dir/l.zpl"\n',
            "printers.z.path",
            "does not exist",
        ),
        (
            '[printers.z]\ntransport = "tcp"\nlabels_dir = "labels"\n',
            "printers.z.labels_dir",
            "folder not found",
        ),
        (
            '[printers.z]\ntransport = "tcp"\nlabels_dir = "badlabels"\n',
            "printers.z.labels_dir",
            "NAME_DPI_SIZE",
        ),
    ],
    ids=["seed-missing", "seed-bad-row", "seed-binary", "replay", "printer-dir", "labels", "tmpl"],
)
def test_check_config_and_run_name_each_file_problem(
    tmp_path: Path, extra: str, key: str, says: str
) -> None:
    (tmp_path / "lots.csv").write_text("gtin,lot\n123,L1\n")
    (tmp_path / "bin.csv").write_bytes(b"gtin,serial\n\xff\xfe\x00\x01\n")
    (tmp_path / "badlabels").mkdir()
    (tmp_path / "badlabels" / "oops.zpl").write_text("^XA^XZ")
    cfg = _config(tmp_path, extra=extra)
    code, lines = _problems(cfg)
    assert code == EXIT_CONFIG  # as run says for the same problem
    assert lines and all(line.startswith(f"config error: {cfg}: {key}: ") for line in lines)
    assert says in lines[0]
    r = _run(["run", "--config", str(cfg)])
    assert r.returncode == EXIT_CONFIG, r.stderr
    assert "Traceback" not in r.stderr
    (line,) = r.stderr.strip().splitlines()
    if key.startswith("cache."):  # read by the first start's import, into an empty cache
        assert line.startswith(f"config error: {cfg}: {key}: {tmp_path}/")
    else:
        assert line == lines[0]


def test_check_config_tls_and_password_files(tmp_path: Path) -> None:
    cfg = tmp_path / "gw.toml"
    cfg.write_text(
        """
[gateway]
site = "s1"
id = "gw1"
[broker]
host = "broker.example.com"
username = "gw1"
password_file = "secret/pw"
[broker.tls]
ca_file = "ca.pem"
cert_file = "client.pem"
key_file = "client.key"
[storage]
path = "state/gw.db"
[stations.dock]
step = "receiving"
"""
    )
    code, lines = _problems(cfg)
    assert code == 2  # the same code as run for the same config error
    assert len(lines) == 1 and lines[0].startswith("config error: ")
    assert lines[0].split(": ")[2] in (
        "broker.password_file",
        "broker.tls.ca_file",
        "broker.tls.cert_file",
        "broker.tls.key_file",
    )


def test_files_that_exist_pass_and_run_creates_the_state_folder(tmp_path: Path) -> None:
    (tmp_path / "scans.txt").write_text("")
    (tmp_path / "labels").mkdir()
    cfg = _config(
        tmp_path,
        extra='[printers.z]\ntransport = "tcp"\nlabels_dir = "labels"\n'
        '[scanners.r]\ntype = "replay"\nstation = "dock"\npath = "scans.txt"\n',
    )
    code, lines = _problems(cfg)
    assert (code, lines) == (0, [])
    assert not (tmp_path / "state").exists(), "check-config creates nothing"


def test_labels_dir_is_relative_to_the_config(tmp_path: Path) -> None:
    cfg = parse_config(
        '[gateway]\nsite="s"\nid="g"\n[stations.a]\nstep="receiving"\n'
        '[printers.z]\ntransport="tcp"\nlabels_dir="labels"\n',
        "gw.toml",
        tmp_path,
    )
    assert cfg.printers["z"].labels_dir == tmp_path / "labels"


# ---------------------------------------------------------------- 10. corrupt databases


def _garbage(p: Path) -> None:
    p.write_bytes(b"definitely not sqlite\n" * 500)


def _foreign(p: Path) -> None:
    con = sqlite3.connect(p)
    con.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    con.commit()
    con.close()


def _corrupt(p: Path) -> None:
    open_database(p).dispose()
    for suffix in ("-wal", "-shm"):
        Path(str(p) + suffix).unlink(missing_ok=True)
    data = bytearray(p.read_bytes())
    data[4096:] = b"\xa5" * (len(data) - 4096)
    p.write_bytes(bytes(data))


@pytest.mark.parametrize("command", ["outbox", "jobs", "printers"])
@pytest.mark.parametrize(
    ("make", "says"),
    [
        (_garbage, "not an SQLite database"),
        (_foreign, "belongs to something else"),
        (_corrupt, "database disk image is malformed"),
    ],
    ids=["garbage", "foreign", "corrupt"],
)
def test_read_commands_on_a_bad_database_say_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    make: Callable[[Path], None],
    says: str,
) -> None:
    cfg = _config(tmp_path)
    db = load_config(cfg).storage.path
    db.parent.mkdir()
    make(db)
    assert main([command, "--config", str(cfg)]) == EXIT_DATABASE
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"database error: {db}: ")
    assert says in err
    assert "traceway will not touch it" in err


def test_a_locked_database_is_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Locked by another program: it may pass, so not exit 3 (which systemd never retries)."""
    cfg = _config(tmp_path)
    db = load_config(cfg).storage.path
    open_database(db).dispose()
    holder = sqlite3.connect(db, isolation_level=None)
    try:
        holder.execute("PRAGMA locking_mode=EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")
        assert main(["outbox", "--config", str(cfg)]) == 1
    finally:
        holder.close()
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        f"database error: {db}: database is locked: another program holds it; "
        "try again when it is done"
    ]


def test_unwritable_output_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "missing" / "x.png"
    code = main(
        [
            "label",
            "preview",
            "--template",
            "sscc",
            "--field",
            "sscc=106141411234567897",
            "-o",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert err.strip().splitlines() == [f"error: cannot write {out}: No such file or directory"]


# ---------------------------------------------------------------- 18. outbox wording


def test_outbox_wording() -> None:
    empty = {"depth": 0, "oldest_unsent_age_s": None, "last_seq": 15, "total": 15}
    assert describe(empty) == "outbox: nothing unsent; last seq 15, 15 row(s) in all"
    some = {"depth": 3, "oldest_unsent_age_s": 12.04, "last_seq": 15, "total": 15}
    assert (
        describe(some) == "outbox: 3 unsent, the oldest 12.0 s old; last seq 15, 15 row(s) in all"
    )


# ---------------------------------------------------------------- 13/14. the demo


def test_setup_installs_the_preview_extra() -> None:
    """`traceway label preview`, which README suggests right after the demo, needs it."""
    setup = (ROOT / ".ci" / "setup").read_text()
    assert 'extras="[preview]"' in setup


@pytest.mark.slow
def test_rerunning_the_demo_keeps_unsent_events_and_seq(tmp_path: Path) -> None:
    """Without a broker the demo's events wait in the outbox; a second run keeps them."""
    demo = tmp_path / "demo"
    shutil.copytree(ROOT / "config", demo / "config")
    shutil.copy(ROOT / "run-demo", demo / "run-demo")
    (demo / ".ci").mkdir()
    (demo / ".ci" / "setup").write_text("#!/bin/sh\n")  # the venv is this one
    (demo / ".ci" / "setup").chmod(0o755)
    (demo / ".venv" / "bin").mkdir(parents=True)
    (demo / ".venv" / "bin" / "traceway").symlink_to(Path(sys.executable).parent / "traceway")
    conf = demo / "config" / "demo.toml"
    conf.write_text(conf.read_text().replace("port = 1883", f"port = {free_port()}"))

    def run_demo() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(demo / "run-demo")], capture_output=True, text=True, timeout=120, cwd=demo
        )

    def outbox() -> str:
        r = _run(["outbox", "--config", str(conf)])
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    first = run_demo()
    assert first.returncode == 0, first.stderr[-2000:]
    after_first = outbox()
    assert after_first.startswith("outbox: 15 unsent, the oldest ")
    assert after_first.endswith("last seq 15, 15 row(s) in all")
    second = run_demo()
    assert second.returncode == 0, second.stderr[-2000:]
    assert "continuing with the state of the earlier run in var/ (outbox: 15 unsent" in (
        second.stderr
    )
    assert "seq=16" in second.stderr, "seq goes on under the same gateway id"
    after_second = outbox()
    assert after_second.startswith("outbox: 30 unsent, ")
    assert after_second.endswith("last seq 30, 30 row(s) in all")
