"""Phone scanner set-up: config keys, the self-made certificate, ``traceway phone-pair``."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("websockets")

from cryptography import x509

from drivers.scanners.phone import certs
from drivers.scanners.phone.registry import Registry, active_devices, add_device
from drivers.scanners.types import RawScan
from gateway.cli.main import main
from gateway.config import ConfigError, parse_config
from gateway.config_files import file_problems
from gateway.pipeline import ScanProcessor

BASE = """
[gateway]
site = "s"
id = "g"
[broker]
enabled = false
[storage]
path = "state/gw.db"
[stations.dock]
step = "receiving"
[stations.pack]
step = "packing"
"""

PHONE = """
[scanners.phones]
type = "phone"
station = "pack"
host = "127.0.0.1"
hostnames = ["127.0.0.1", "dock1.local"]
"""


def test_phone_config_defaults_and_station_of_its_phones() -> None:
    cfg = parse_config(BASE + PHONE)
    sc = cfg.scanners["phones"]
    assert sc.type == "phone"
    assert (sc.port, sc.cert_file, sc.pair_at_start, sc.max_length) == (8443, None, True, 4096)
    proc = ScanProcessor(cfg, lambda: True)
    scan = RawScan("]C1x", "phones.alice", 0.0, 0.0)
    assert proc.station_of(scan) == "pack"  # a phone's scans belong to its scanner's station
    assert proc.station_of(RawScan("x", "nobody.alice", 0.0, 0.0)) == "dock"


@pytest.mark.parametrize(
    ("extra", "key", "words"),
    [
        (
            'port = 8443\ncert_file = "c.pem"\n',
            "scanners.phones",
            "cert_file and key_file go together",
        ),
        ('hostnames = ["https://gw.example"]\n', "scanners.phones.hostnames", "not a host name"),
        ('hostnames = ["gw.example:8443"]\n', "scanners.phones.hostnames", "no scheme, no port"),
        ("rate = 0\n", "scanners.phones.rate", "greater than 0"),
        ("max_devices = 0\n", "scanners.phones.max_devices", "greater than or equal to 1"),
        ("pin = 1234\n", "scanners.phones.pin", "unknown key"),
    ],
)
def test_phone_config_errors_name_the_key(extra: str, key: str, words: str) -> None:
    text = PHONE.replace('host = "127.0.0.1"\n', f'host = "127.0.0.1"\n{extra}')
    if extra.startswith("hostnames"):
        text = text.replace('hostnames = ["127.0.0.1", "dock1.local"]\n', "")
    with pytest.raises(ConfigError) as e:
        parse_config(BASE + text)
    assert e.value.key == key and words in e.value.message


def test_phone_config_needs_host_and_a_short_name() -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(BASE + PHONE.replace('host = "127.0.0.1"\n', ""))
    assert e.value.key == "scanners.phones.host"
    with pytest.raises(ConfigError) as e:
        parse_config(BASE + PHONE.replace("[scanners.phones]", '[scanners."phones/dock"]'))
    assert "phone scanner's name" in str(e.value)


def test_check_config_reports_a_missing_phone_certificate(tmp_path: Path) -> None:
    text = BASE + PHONE + 'cert_file = "no.pem"\nkey_file = "no-key.pem"\n'
    cfg = parse_config(text, "gw.toml", tmp_path)
    keys = {e.key for e in file_problems(cfg, "gw.toml")}
    assert {"scanners.phones.cert_file", "scanners.phones.key_file"} <= keys


def test_self_made_certificate_is_name_constrained_and_renewed(tmp_path: Path) -> None:
    names = ["192.0.2.5", "dock1.local"]
    files = certs.ensure_self_made(tmp_path, names)
    assert files.ca is not None and (tmp_path / "ca-key.pem").stat().st_mode & 0o077 == 0
    ca = x509.load_pem_x509_certificate(files.ca.read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    nc = ca.extensions.get_extension_for_class(x509.NameConstraints)
    assert nc.critical and len(nc.value.permitted_subtrees or []) == 2
    leaf = x509.load_pem_x509_certificate(files.cert.read_bytes())  # first block of the chain
    assert sorted(certs.cert_names(leaf)) == sorted(names)
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc <= dt.timedelta(days=825)
    assert len(files.fingerprint) == 95  # 32 bytes as AB:CD:…
    # the chain verifies against the CA for those names (what a phone does once it trusts it)
    ctx = ssl.create_default_context(cafile=str(files.ca))
    assert ctx.cert_store_stats()["x509_ca"] == 1
    # same names: nothing changes; near expiry: a new server certificate under the same CA
    again = certs.ensure_self_made(tmp_path, names)
    assert again.fingerprint == files.fingerprint
    assert (
        x509.load_pem_x509_certificate(files.cert.read_bytes()).serial_number == leaf.serial_number
    )
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=800)
    renewed = certs.ensure_self_made(tmp_path, names, now=later)
    assert renewed.fingerprint == files.fingerprint
    assert (
        x509.load_pem_x509_certificate(files.cert.read_bytes()).serial_number != leaf.serial_number
    )
    # other names: a new CA (its constraints cannot cover them)
    assert certs.ensure_self_made(tmp_path, ["192.0.2.6"]).fingerprint != files.fingerprint


def _config(tmp_path: Path) -> Path:
    cfg = tmp_path / "gw.toml"
    cfg.write_text(BASE + PHONE)
    return cfg


def test_phone_pair_prints_qr_and_url_with_a_one_time_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _config(tmp_path)
    assert main(["phone-pair", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "https://127.0.0.1:8443/#pair=" in out
    assert "█" in out or "▀" in out  # the QR code drawn with block characters
    assert "ca.crt, SHA-256" in out
    reg = Registry(tmp_path / "state" / "phone-phones" / "devices.json")
    data = reg.load()
    assert len(data["pairings"]) == 1
    token = out.split("#pair=")[1].split()[0]
    assert token not in reg.path.read_text()  # stored hashed only


def test_phone_pair_list_and_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _config(tmp_path)
    reg = Registry(tmp_path / "state" / "phone-phones" / "devices.json")
    reg.update(lambda d: add_device(d, "alice", "t" * 40, "KEY", 1.0, 5))
    assert main(["phone-pair", "-c", str(cfg), "--list"]) == 0
    listed = capsys.readouterr().out
    assert "alice" in listed and "scanner phones.alice" in listed
    assert main(["phone-pair", "-c", str(cfg), "--revoke", "alice"]) == 0
    assert active_devices(Registry(reg.path).load()) == []
    assert main(["phone-pair", "-c", str(cfg), "--revoke", "alice"]) == 1
    assert "no paired phone called 'alice'" in capsys.readouterr().err


def test_phone_pair_without_a_phone_scanner(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "gw.toml"
    cfg.write_text(BASE)
    assert main(["phone-pair", "-c", str(cfg)]) == 2
    assert "no phone scanner" in capsys.readouterr().err


def test_an_unusable_certificate_stops_only_this_scanner(tmp_path: Path) -> None:
    from drivers.scanners.config import PhoneScanner
    from drivers.scanners.phone.server import PhoneReader
    from drivers.scanners.types import DeviceStatus

    bad = tmp_path / "cert.pem"
    bad.write_text("not a certificate")
    cfg = PhoneScanner(type="phone", station="dock", host="127.0.0.1", cert_file=bad, key_file=bad)
    states: list[DeviceStatus] = []
    reader = PhoneReader("phones", cfg, lambda s: None, states.append, state_dir=tmp_path)
    reader.start()  # no exception: the gateway and its other scanners keep running
    reader.stop()
    assert [s.state for s in states] == ["error"]
    assert "cannot use the certificate" in states[0].detail


def test_vendored_decoder_matches_its_checksums() -> None:
    """What the page serves is exactly the pinned npm release (fetch.sh re-fetches it)."""
    import hashlib

    folder = Path(__file__).resolve().parents[1] / "drivers/scanners/phone/static/vendor/zxing-wasm"
    sums = dict(reversed(line.split()) for line in (folder / "SHA256SUMS").read_text().splitlines())
    files = [f for f in sums if not f.endswith(".tgz")]
    assert sorted(files) == ["LICENSE", "index.js", "zxing_reader.wasm"]
    for f in files:
        assert hashlib.sha256((folder / f).read_bytes()).hexdigest() == sums[f], f
    assert "MIT License" in (folder / "LICENSE").read_text()
    assert "Apache License 2.0" in (folder / "NOTICE").read_text()


class _Recorder:
    """A phone reader stand-in: records the verdicts the daemon routes to it."""

    def __init__(self) -> None:
        self.verdicts: list[tuple[Any, ...]] = []

    def on_verdict(self, *args: Any) -> None:
        self.verdicts.append(args)

    def stop(self, timeout: float = 2.0) -> None:
        pass


def test_daemon_answers_a_phone_after_commit_and_on_a_storage_failure(tmp_path: Path) -> None:
    """Verdicts reach the phone's reader only from the reporter (after the commit), with
    the committed station; a scan the database refused is answered as a reject."""
    import time

    from gateway.daemon import Gateway

    cfg = parse_config(
        BASE.replace('path = "state/gw.db"', f'path = "{tmp_path / "gw.db"}"')
        + PHONE
        + '[[patterns]]\nkind = "command"\nregex = "(?P<value>QTY:\\\\d{1,6})"\n'
    )
    gw = Gateway(cfg)
    phones = _Recorder()
    gw.readers["phones"] = phones
    gw._reporter.start()
    gw.writer.start()
    try:
        gw.writer.submit(RawScan("]Q1QTY:7", "phones.alice", time.time(), 1.0, 11))
        gw.writer.submit(RawScan("]C1x", "tunnel", time.time(), 2.0, 12))  # not a phone's
        deadline = time.monotonic() + 10
        while not phones.verdicts and time.monotonic() < deadline:
            time.sleep(0.02)
        gw._failed([RawScan("]C1y", "phones.alice", time.time(), 3.0, 13)], "disk I/O error")
    finally:
        gw.writer.stop()
        gw._reports.put(None)
        gw._reporter.join(5)
        gw.engine.dispose()
    first, refused = phones.verdicts
    frame_id, verdict, reasons, _summary, seq, view = first
    assert (frame_id, verdict, reasons, seq) == (11, "accept", [], None)
    assert (view.station, view.step, view.quantity) == ("pack", "packing", 7)
    assert refused[0] == 13 and refused[1] == "reject" and refused[2][0][0] == "storage_error"
    assert "disk I/O error" in refused[2][0][1]
