"""The systemd unit, sysusers/tmpfiles and udev rules under systemd/.

Pure checks always run; ``systemd-analyze verify``, ``systemd-sysusers`` /
``systemd-tmpfiles`` and ``udevadm verify`` run when they are installed
(Debian: ``systemd``, ``udev``), and skip cleanly otherwise.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from gateway.cli.main import build_parser
from gateway.config import StorageConfig

SYSTEMD = Path(__file__).resolve().parent.parent / "systemd"
UNIT = SYSTEMD / "traceway.service"
EXEC = "/opt/traceway/venv/bin/traceway"

Unit = dict[str, list[tuple[str, str]]]


def parse_unit(text: str) -> Unit:
    """Sections -> (key, value) pairs in order; repeated keys are kept (as systemd does)."""
    out: Unit = {}
    section = ""
    pending = ""
    for raw in text.splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            out.setdefault(section, [])
            continue
        assert section, f"key outside a section: {line!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not key=value: {line!r}"
        out[section].append((key.strip(), value.strip()))
    return out


def values(unit: Unit, section: str, key: str) -> list[str]:
    """Every value of ``key``; an empty assignment resets the list, as in systemd."""
    got: list[str] = []
    for k, v in unit.get(section, []):
        if k == key:
            got = [] if v == "" else [*got, v]
    return got


def one(unit: Unit, section: str, key: str) -> str:
    """The effective (last) value of a single-valued key."""
    vals = [v for k, v in unit.get(section, []) if k == key]
    assert vals, f"[{section}] {key}= is missing"
    return vals[-1]


def seconds(value: str) -> float:
    """A systemd time span like ``30``, ``15s``, ``2min``, ``1min 30s``."""
    units = {"": 1.0, "s": 1.0, "sec": 1.0, "ms": 0.001, "min": 60.0, "m": 60.0, "h": 3600.0}
    total = 0.0
    for num, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value):
        total += float(num) * units[unit]
    return total


@pytest.fixture(scope="module")
def unit() -> Unit:
    return parse_unit(UNIT.read_text())


def test_notify_and_watchdog(unit: Unit) -> None:
    assert one(unit, "Service", "Type") == "notify"
    assert one(unit, "Service", "NotifyAccess") == "main"
    watchdog = seconds(one(unit, "Service", "WatchdogSec"))
    assert 10 <= watchdog <= 120
    assert one(unit, "Service", "Restart") == "always"
    assert 0 < seconds(one(unit, "Service", "RestartSec")) <= 10
    assert one(unit, "Unit", "StartLimitIntervalSec") == "0"  # never gives up


def test_stop_timeout_covers_graceful_stop(unit: Unit) -> None:
    # The daemon stops within 10 s of SIGTERM; systemd must not kill it sooner.
    assert seconds(one(unit, "Service", "TimeoutStopSec")) >= 12
    assert one(unit, "Service", "KillMode") == "mixed"
    assert seconds(one(unit, "Service", "TimeoutStartSec")) >= 60  # migrations


def test_hardening(unit: Unit) -> None:
    expected = {
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "NoNewPrivileges": "yes",
        "DevicePolicy": "closed",
        "User": "traceway",
        "StateDirectory": "traceway",
        "RestrictSUIDSGID": "yes",
        "ProtectKernelModules": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectControlGroups": "yes",
        "LockPersonality": "yes",
    }
    for key, value in expected.items():
        assert one(unit, "Service", key) == value, key
    assert values(unit, "Service", "CapabilityBoundingSet") == []
    assert one(unit, "Service", "CapabilityBoundingSet") == ""
    groups = one(unit, "Service", "SupplementaryGroups").split()
    assert sorted(groups) == ["dialout", "input", "lp"]
    families = one(unit, "Service", "RestrictAddressFamilies").split()
    assert sorted(families) == ["AF_INET", "AF_INET6", "AF_NETLINK", "AF_UNIX"]
    # Would hide hot-plugged scanners and printers.
    assert values(unit, "Service", "PrivateDevices") in ([], ["no"])
    # Breaks reading the clock sync state on systemd 252 (gateway/clock.py).
    assert values(unit, "Service", "ProtectClock") in ([], ["no"])


def test_device_access_is_limited(unit: Unit) -> None:
    allowed = {v.split()[0]: v.split()[1] for v in values(unit, "Service", "DeviceAllow")}
    for dev in ("char-input", "char-hidraw", "char-ttyUSB", "char-ttyACM", "char-usb_device"):
        assert allowed.get(dev) == "rw", dev
    assert "char-usb" in allowed  # /dev/usb/lp* (usblp)
    assert not [d for d in allowed if d.startswith("block-") or d in ("char-*", "/dev/mem")]


def test_execstart_matches_cli_and_state_dir(unit: Unit) -> None:
    argv = shlex.split(one(unit, "Service", "ExecStart"))
    assert argv[0] == EXEC
    args = build_parser().parse_args(argv[1:])
    assert args.command == "run"
    assert str(args.config) == "/etc/traceway/gateway.toml"
    # The default database lives in the unit's StateDirectory (the only writable place).
    state = Path("/var/lib") / one(unit, "Service", "StateDirectory")
    assert StorageConfig().path.parent == state


def test_parser_can_fail() -> None:
    bad = parse_unit("[Service]\nType=simple\n")
    assert one(bad, "Service", "Type") != "notify"
    with pytest.raises(AssertionError):
        one(bad, "Service", "WatchdogSec")
    assert values(parse_unit("[S]\nA=x\nA=\nA=y\n"), "S", "A") == ["y"]
    assert seconds("1min 30s") == 90


def _verify(tmp_path: Path, text: str) -> str:
    """Run systemd-analyze verify on a copy whose ExecStart points to an existing program."""
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze not installed (Debian package: systemd)")
    fake = tmp_path / "traceway"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    path = tmp_path / "traceway.service"
    path.write_text(text.replace(EXEC, str(fake)))
    try:
        proc = subprocess.run(
            [exe, "verify", "--man=no", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"systemd-analyze verify cannot run here: {exc}")
    out = proc.stdout + proc.stderr
    if proc.returncode != 0 and str(path) not in out and "traceway" not in out:
        pytest.skip(f"systemd-analyze verify cannot run here: {out.strip()[:200]}")
    problems = [ln for ln in out.splitlines() if "traceway" in ln]
    return "\n".join(problems) + ("" if proc.returncode == 0 else f"\nexit {proc.returncode}")


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    assert _verify(tmp_path, UNIT.read_text()).strip() == ""


def test_systemd_analyze_verify_catches_mistakes(tmp_path: Path) -> None:
    broken = UNIT.read_text().replace("Type=notify", "Type=notifyy\nProtectSystm=strict")
    out = _verify(tmp_path, broken)
    assert "notifyy" in out and "ProtectSystm" in out


def _has(tool: str) -> str:
    exe = shutil.which(tool)
    if exe is None:
        pytest.skip(f"{tool} not installed (Debian package: systemd)")
    return exe


def test_sysusers_and_tmpfiles(tmp_path: Path) -> None:
    sysusers, tmpfiles = _has("systemd-sysusers"), _has("systemd-tmpfiles")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "usr/lib/sysusers.d").mkdir(parents=True)
    (root / "usr/lib/tmpfiles.d").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc/group").write_text("root:x:0:\ninput:x:101:\ndialout:x:20:\nlp:x:7:\n")
    shutil.copy(SYSTEMD / "traceway.sysusers", root / "usr/lib/sysusers.d/traceway.conf")
    shutil.copy(SYSTEMD / "traceway.tmpfiles", root / "usr/lib/tmpfiles.d/traceway.conf")
    proc = subprocess.run([sysusers, f"--root={root}"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    passwd = (root / "etc/passwd").read_text()
    assert re.search(r"^traceway:x:\d+:\d+:.*:/var/lib/traceway:/usr/sbin/nologin$", passwd, re.M)
    groups = {
        line.split(":")[0]: line.split(":")[3].split(",")
        for line in (root / "etc/group").read_text().splitlines()
    }
    for g in ("input", "dialout", "lp"):
        assert "traceway" in groups[g], g

    if os.geteuid() != 0:
        pytest.skip("systemd-tmpfiles --root needs root to chown")
    (root / "etc/traceway").mkdir()
    secret = root / "etc/traceway/gateway.toml"
    secret.write_text("[gateway]\n")
    secret.chmod(0o644)
    proc = subprocess.run(
        [tmpfiles, f"--root={root}", "--create"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    m = re.search(r"^traceway:x:(\d+):", passwd, re.M)
    assert m is not None
    uid = int(m.group(1))
    state = (root / "var/lib/traceway").stat()
    assert (state.st_uid, state.st_mode & 0o777) == (uid, 0o750)
    assert (root / "etc/traceway").stat().st_mode & 0o777 == 0o750
    assert secret.stat().st_mode & 0o777 == 0o640  # tightened from 0644


# ---- udev rules ----

RULES = SYSTEMD / "99-traceway.rules"
MATCH_OPS = ("==", "!=")
ASSIGN_OPS = ("=", "+=", "-=", ":=")
MATCH_ONLY = {
    "ACTION",
    "KERNEL",
    "SUBSYSTEM",
    "SUBSYSTEMS",
    "ATTRS",
    "KERNELS",
    "DRIVERS",
    "DRIVER",
}
ASSIGN_ONLY = {
    "GROUP",
    "MODE",
    "OWNER",
    "SYMLINK",
    "GOTO",
    "LABEL",
    "IMPORT",
    "RUN",
    "TAG",
    "OPTIONS",
}
EITHER = {"ENV", "ATTR"}
TOKEN = re.compile(r'\s*([A-Z_]+)(\{[^}]*\})?\s*(==|!=|\+=|-=|:=|=)\s*"([^"]*)"\s*(,|$)')


def parse_rules(text: str) -> list[list[tuple[str, str, str]]]:
    """udev rule lines as (key, operator, value) tokens; raises ValueError on bad syntax."""
    rules: list[list[tuple[str, str, str]]] = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        pos, tokens = 0, []
        while pos < len(line):
            m = TOKEN.match(line, pos)
            if m is None:
                raise ValueError(f"line {n}: cannot parse near {line[pos : pos + 30]!r}")
            key, op = m.group(1), m.group(3)
            if key in MATCH_ONLY and op not in MATCH_OPS:
                raise ValueError(f"line {n}: {key} is a match key, not {op}")
            if key in ASSIGN_ONLY and op not in ASSIGN_OPS:
                raise ValueError(f"line {n}: {key} is an assignment, not {op}")
            if key not in MATCH_ONLY | ASSIGN_ONLY | EITHER:
                raise ValueError(f"line {n}: unknown key {key}")
            tokens.append((key + (m.group(2) or ""), op, m.group(4)))
            pos = m.end()
        rules.append(tokens)
    return rules


def test_udev_rules_parse_and_cover_devices() -> None:
    rules = parse_rules(RULES.read_text())
    labels = {v for r in rules for k, op, v in r if k == "LABEL"}
    gotos = {v for r in rules for k, op, v in r if k == "GOTO"}
    assert gotos and gotos <= labels
    flat = [dict((k, v) for k, _, v in r) for r in rules]
    zebra = [r for r in flat if r.get("ATTRS{idVendor}") == "0a5f"]
    assert zebra and zebra[0]["ENV{TRACEWAY_PRINTER}"] == "1"
    printers = [r for r in flat if r.get("ENV{TRACEWAY_PRINTER}") == "1" and "GROUP" in r]
    assert {r["GROUP"] for r in printers} == {"lp"}
    serial = [r for r in flat if r.get("SUBSYSTEM") == "tty"]
    assert serial and all(r.get("ENV{ID_MM_DEVICE_IGNORE}") == "1" for r in serial)
    assert all(r["GROUP"] == "dialout" and r["MODE"] == "0660" for r in serial)
    hid = [r for r in flat if r.get("SUBSYSTEM") in ("hidraw", "input")]
    assert {r["GROUP"] for r in hid} == {"input"}
    links = [r["SYMLINK"] for r in flat if "SYMLINK" in r]
    assert links and all(link.startswith("traceway/") for link in links)


@pytest.mark.parametrize(
    "bad",
    [
        'KERNEL="ttyACM0", GROUP="dialout"',  # match key assigned
        'SUBSYSTEM=="tty", GROUP=="dialout"',  # assignment compared
        'SUBSYSTEM=="tty" GROUP="dialout"',  # missing comma
        'SUBSYSTEM=="tty", FOOBAR="x"',  # unknown key
    ],
)
def test_udev_parser_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_rules(bad)


def test_udevadm_verify() -> None:
    exe = shutil.which("udevadm")
    if exe is None:
        pytest.skip("udevadm not installed (Debian package: udev)")
    probe = subprocess.run([exe, "verify", "--help"], capture_output=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip("udevadm verify needs systemd >= 254")
    proc = subprocess.run([exe, "verify", str(RULES)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_install_guide_names_real_files() -> None:
    text = (SYSTEMD / "INSTALL.md").read_text()
    root = SYSTEMD.parent
    named = set(re.findall(r"\b((?:systemd|config/mosquitto)/[\w.-]+\.\w+)", text))
    named |= {
        f"systemd/{m}" for m in re.findall(r"\b(traceway\.(?:sysusers|tmpfiles|service))\b", text)
    }
    assert "systemd/traceway.service" in named and "config/mosquitto/traceway.acl" in named
    missing = sorted(n for n in named if not (root / n).exists())
    assert not missing, f"INSTALL.md names files that do not exist: {missing}"
    unit = parse_unit(UNIT.read_text())
    assert one(unit, "Service", "ExecStart") in text.replace("`", "") or EXEC in text
