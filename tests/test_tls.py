"""gateway.mqtt.tls against a private mosquitto with TLS listeners on 127.0.0.1 (test-time PKI).

Also: TLS and credential mistakes are config errors (exit 2) found by check-config and by
run before anything starts, and a failed verification at connect time is logged with why.
"""

from __future__ import annotations

import errno
import logging
import os
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives import serialization
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gateway.config import BrokerConfig, ConfigError, TlsConfig
from gateway.mqtt.publisher import Publisher
from gateway.mqtt.tls import (
    TlsError,
    check_broker,
    configure_client,
    connect_error_reason,
    is_loopback,
    tls_context,
)
from gateway.store.db import open_database
from tests.conftest import Broker, free_port, make_broker
from tests.tls_util import Pki, listener_conf, make_pki, run_as_self

TIMEOUT = 5.0


@dataclass
class TlsBroker:
    broker: Broker
    pki: Pki
    tls_port: int
    mtls_port: int


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    """One broker: plain (unused), TLS, and TLS with required client certificates."""
    d = tmp_path_factory.mktemp("tlsbroker")
    pki = make_pki(d / "pki")
    tls_port, mtls_port = free_port(), free_port()
    extra = (
        run_as_self()
        + listener_conf(tls_port, pki)
        + listener_conf(mtls_port, pki, require_client_cert=True)
    )
    b = make_broker(d, extra)
    b.start()
    try:
        yield TlsBroker(b, pki, tls_port, mtls_port)
    finally:
        b.stop()


class Conn:
    """A paho MQTT v5 client that records the CONNACK."""

    def __init__(self) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.connack = threading.Event()
        self.reason: ReasonCode | None = None
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        props: Properties | None,
    ) -> None:
        self.reason = reason
        self.connack.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        props: Properties | None,
    ) -> None:
        self.connack.set()  # refused or dropped before a CONNACK: stop waiting

    def connect(self, port: int, host: str = "127.0.0.1") -> bool:
        """True when the broker accepted the connection within the timeout."""
        self.client.connect(host, port, keepalive=10)
        self.client.loop_start()
        try:
            self.connack.wait(TIMEOUT)
            return self.reason is not None and not self.reason.is_failure
        finally:
            self.client.disconnect()
            self.client.loop_stop()


def _connect(cfg: TlsConfig, port: int, host: str = "127.0.0.1") -> bool:
    conn = Conn()
    conn.client.tls_set_context(tls_context(cfg))
    return conn.connect(port, host)


def test_context_is_strict(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    ctx = tls_context(TlsConfig(enabled=True, ca_file=pki.ca.cert_file))
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.check_hostname is True
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2


def test_right_ca_connects(tls_broker: TlsBroker) -> None:
    cfg = TlsConfig(enabled=True, ca_file=tls_broker.pki.ca.cert_file)
    assert _connect(cfg, tls_broker.tls_port) is True
    assert _connect(cfg, tls_broker.tls_port, host="localhost") is True


def test_wrong_ca_fails_without_fallback(tls_broker: TlsBroker) -> None:
    before = tls_broker.broker.log.read_text().count("New client connected")
    cfg = TlsConfig(enabled=True, ca_file=tls_broker.pki.other_ca.cert_file)
    with pytest.raises(ssl.SSLCertVerificationError):
        _connect(cfg, tls_broker.tls_port)
    assert tls_broker.broker.log.read_text().count("New client connected") == before


def test_hostname_is_checked(tls_broker: TlsBroker) -> None:
    ca = tls_broker.pki.ca.cert_file
    wrong = TlsConfig(enabled=True, ca_file=ca, server_hostname="not-the-broker.test")
    with pytest.raises(ssl.SSLCertVerificationError):
        _connect(wrong, tls_broker.tls_port)
    # Connecting by IP while verifying the certificate's DNS name works.
    right = TlsConfig(enabled=True, ca_file=ca, server_hostname="broker.test")
    assert _connect(right, tls_broker.tls_port) is True


def test_client_certificate_listener(tls_broker: TlsBroker) -> None:
    pki = tls_broker.pki
    with_cert = TlsConfig(
        enabled=True,
        ca_file=pki.ca.cert_file,
        cert_file=pki.client.cert_file,
        key_file=pki.client.key_file,
    )
    assert _connect(with_cert, tls_broker.mtls_port) is True
    without = TlsConfig(enabled=True, ca_file=pki.ca.cert_file)
    try:
        accepted = _connect(without, tls_broker.mtls_port)
    except (ssl.SSLError, OSError):
        accepted = False
    assert accepted is False


def test_missing_files_are_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "ca.pem"
    with pytest.raises(TlsError, match=r"nope/ca\.pem: CA file not found"):
        tls_context(TlsConfig(enabled=True, ca_file=missing))
    pki = make_pki(tmp_path / "pki")
    with pytest.raises(TlsError, match=r"client\.pem: client certificate not found"):
        tls_context(
            TlsConfig(enabled=True, ca_file=pki.ca.cert_file, cert_file=tmp_path / "client.pem")
        )
    with pytest.raises(TlsError, match=r"gone\.key: client key not found"):
        tls_context(
            TlsConfig(
                enabled=True,
                ca_file=pki.ca.cert_file,
                cert_file=pki.client.cert_file,
                key_file=tmp_path / "gone.key",
            )
        )
    with pytest.raises(TlsError, match=r"only\.key: tls\.key_file is set but tls\.cert_file"):
        tls_context(
            TlsConfig(enabled=True, ca_file=pki.ca.cert_file, key_file=tmp_path / "only.key")
        )


def test_bad_pem_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "garbage-ca.pem"
    bad.write_text("this is not a certificate\n")
    with pytest.raises(TlsError, match=r"garbage-ca\.pem: not a valid PEM"):
        tls_context(TlsConfig(enabled=True, ca_file=bad))


def test_mismatched_and_encrypted_keys(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    mismatched = TlsConfig(
        enabled=True,
        ca_file=pki.ca.cert_file,
        cert_file=pki.client.cert_file,
        key_file=pki.server.key_file,
    )
    with pytest.raises(TlsError, match=r"client\.crt / .*server\.key: cannot load"):
        tls_context(mismatched)

    enc = tmp_path / "encrypted.key"
    enc.write_bytes(
        pki.client.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"s3cret-passphrase"),
        )
    )
    encrypted = TlsConfig(
        enabled=True, ca_file=pki.ca.cert_file, cert_file=pki.client.cert_file, key_file=enc
    )
    with pytest.raises(TlsError, match=r"encrypted\.key: the private key is encrypted"):
        tls_context(encrypted)


class FakeClient:
    """Records what configure_client applies."""

    def __init__(self) -> None:
        self.context: ssl.SSLContext | None = None
        self.creds: tuple[str | None, str | None] | None = None

    def tls_set_context(self, context: ssl.SSLContext | None = None) -> None:
        self.context = context

    def username_pw_set(self, username: str | None, password: str | None = None) -> None:
        self.creds = (username, password)


def test_configure_client_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    pki = make_pki(tmp_path)
    tls = TlsConfig(enabled=True, ca_file=pki.ca.cert_file)
    pw = tmp_path / "mqtt.password"
    pw.write_text("file-secret-123\n")

    c = FakeClient()
    configure_client(
        c, BrokerConfig(host="mqtt.example", tls=tls, username="A/gw1", password_file=pw)
    )
    assert c.context is not None and c.context.verify_mode == ssl.CERT_REQUIRED
    assert c.creds == ("A/gw1", "file-secret-123")

    monkeypatch.setenv("TW_TEST_PW", "env-secret-456")
    c = FakeClient()
    configure_client(
        c, BrokerConfig(host="mqtt.example", tls=tls, username="u", password_env="TW_TEST_PW")
    )
    assert c.creds == ("u", "env-secret-456")

    monkeypatch.delenv("TW_TEST_PW")
    with pytest.raises(TlsError, match="TW_TEST_PW is not set"):
        configure_client(
            FakeClient(),
            BrokerConfig(host="mqtt.example", tls=tls, username="u", password_env="TW_TEST_PW"),
        )
    with pytest.raises(TlsError, match=r"missing\.pw: broker password file cannot be read"):
        configure_client(
            FakeClient(),
            BrokerConfig(
                host="mqtt.example", tls=tls, username="u", password_file=tmp_path / "missing.pw"
            ),
        )
    text = caplog.text
    assert "file-secret-123" not in text and "env-secret-456" not in text


def test_no_plaintext_credentials_to_remote_broker(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("secret-789")
    remote = BrokerConfig(
        host="10.1.2.3", username="gw", password_file=pw, tls=TlsConfig(enabled=False)
    )
    with pytest.raises(TlsError, match="refusing to send MQTT credentials in plaintext") as info:
        configure_client(FakeClient(), remote)
    assert "secret-789" not in str(info.value)
    local = FakeClient()
    configure_client(local, BrokerConfig(host="127.0.0.1", username="gw", password_file=pw))
    assert local.context is None and local.creds == ("gw", "secret-789")
    # without an explicit choice a remote broker gets TLS (safe by default)
    assert BrokerConfig(host="10.1.2.3").use_tls is True
    assert BrokerConfig(host="localhost").use_tls is False


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("localhost", True),
        ("10.0.0.1", False),
        ("mqtt", False),
    ],
)
def test_is_loopback(host: str, expected: bool) -> None:
    assert is_loopback(host) is expected


# -- mistakes found before the publisher starts (check-config, run) ---------------------

GW = '[gateway]\nsite = "s"\nid = "g"\n[storage]\npath = "state/gw.db"\n[stations.a]\nstep = "receiving"\n'


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TW_TEST_PW"}
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


@pytest.mark.parametrize(
    ("broker", "key", "words"),
    [
        (  # credentials over plaintext to a remote broker
            'host = "mqtt.invalid"\nusername = "gw"\npassword_file = "pw"\n'
            "[broker.tls]\nenabled = false\n",
            "broker.tls.enabled",
            "credentials would go in plaintext to mqtt.invalid",
        ),
        (
            'host = "mqtt.invalid"\n[broker.tls]\nca_file = "nope/ca.pem"\n',
            "broker.tls.ca_file",
            "nope/ca.pem: CA file not found",
        ),
        (
            'host = "mqtt.invalid"\nusername = "gw"\npassword_file = "missing.pw"\n'
            '[broker.tls]\nca_file = "ca.pem"\n',
            "broker.password_file",
            "missing.pw: broker password file cannot be read",
        ),
        (
            'host = "mqtt.invalid"\n[broker.tls]\nca_file = "ca.pem"\ncert_file = "ca.pem"\n'
            'key_file = "gone.key"\n',
            "broker.tls.key_file",
            "gone.key: client key not found",
        ),
    ],
)
def test_check_config_and_run_refuse_with_exit_2(
    tmp_path: Path, broker: str, key: str, words: str
) -> None:
    """The same config error: one line naming file and key, exit 2 from both commands;
    ``run`` stops before anything starts (no database, no publisher process)."""
    pki = make_pki(tmp_path / "pki")
    (tmp_path / "ca.pem").write_bytes(pki.ca.cert_file.read_bytes())
    (tmp_path / "pw").write_text("s3cret\n")
    (tmp_path / "pw").chmod(0o600)
    cfg = tmp_path / "gw.toml"
    cfg.write_text(GW + "[broker]\n" + broker)
    for args in (("check-config", str(cfg)), ("run", "--config", str(cfg))):
        r = _cli(*args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert r.stderr.startswith(f"config error: {cfg}: {key}: "), r.stderr
        assert words in r.stderr and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "s3cret" not in r.stderr
    assert not (tmp_path / "state").exists(), "run refused before opening the database"


def test_password_env_unset_warns_in_check_config_and_stops_run(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    cfg = tmp_path / "gw.toml"
    cfg.write_text(
        GW + f'[broker]\nhost = "mqtt.invalid"\nusername = "gw"\npassword_env = "TW_TEST_PW"\n'
        f'[broker.tls]\nca_file = "{pki.ca.cert_file}"\n'
    )
    r = _cli("check-config", str(cfg))
    assert r.returncode == 0, r.stderr
    assert "warning: broker.password_env: TW_TEST_PW is not set here" in r.stderr
    r = _cli("run", "--config", str(cfg))
    assert r.returncode == 2
    assert f"config error: {cfg}: broker.password_env: " in r.stderr
    assert "TW_TEST_PW is not set" in r.stderr


def test_unreadable_file_is_a_warning_for_check_config_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """check-config is often run by an admin, not the service's user: a file it may not
    read is a warning there; at start it is an error."""
    pki = make_pki(tmp_path)
    broker = BrokerConfig(host="mqtt.invalid", tls=TlsConfig(ca_file=pki.ca.cert_file))
    real_open = Path.open

    def denied(self: Path, *args: Any, **kwargs: Any) -> Any:
        if self == pki.ca.cert_file:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", denied)
    warnings = check_broker(broker, "gw.toml", strict=False)
    assert len(warnings) == 1 and warnings[0].startswith("broker.tls.ca_file: ")
    assert "Permission denied" in warnings[0]
    with pytest.raises(ConfigError, match=r"gw\.toml: broker\.tls\.ca_file: .*Permission denied"):
        check_broker(broker, "gw.toml")
    assert check_broker(BrokerConfig(enabled=False, host="x", tls=TlsConfig()), "gw.toml") == []


# -- verification failures at connect time say why ---------------------------------------


def _publisher_says(tmp_path: Path, broker: BrokerConfig, caplog: pytest.LogCaptureFixture) -> str:
    """Start a publisher against ``broker`` and return the first connect failure it logs."""
    db = tmp_path / "gw.db"
    open_database(db).dispose()
    pub = Publisher(broker, "tls-test", db, lambda seqs: None)
    caplog.set_level(logging.WARNING, logger="gateway.mqtt.publisher")
    pub.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            said = [r.getMessage() for r in caplog.records if "broker" in r.getMessage()]
            if said:
                return said[0]
            time.sleep(0.05)
        return ""
    finally:
        pub.stop()


def test_wrong_ca_is_logged_with_the_reason(
    tls_broker: TlsBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = BrokerConfig(
        host="127.0.0.1",
        port=tls_broker.tls_port,
        tls=TlsConfig(enabled=True, ca_file=tls_broker.pki.other_ca.cert_file),
    )
    said = _publisher_says(tmp_path, cfg, caplog)
    assert "TLS certificate verify failed" in said, said
    assert "is tls.ca_file the CA that signed the broker's certificate?" in said


def test_wrong_host_name_is_logged_with_the_reason(
    tls_broker: TlsBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = BrokerConfig(
        host="127.0.0.1",
        port=tls_broker.tls_port,
        tls=TlsConfig(
            enabled=True,
            ca_file=tls_broker.pki.ca.cert_file,
            server_hostname="not-the-broker.test",
        ),
    )
    said = _publisher_says(tmp_path, cfg, caplog)
    assert "TLS certificate verify failed" in said, said
    assert "Hostname mismatch" in said and "not-the-broker.test" in said


def test_connect_error_reason_words() -> None:
    assert connect_error_reason(ConnectionRefusedError(111, "Connection refused")) == (
        "Connection refused"
    )
    assert connect_error_reason(
        ssl.SSLError(1, "[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED]")
    ).startswith("TLS handshake failed")
    assert connect_error_reason(None) == "no reason given"
