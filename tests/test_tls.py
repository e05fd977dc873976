"""gateway.mqtt.tls against a private mosquitto with TLS listeners on 127.0.0.1 (test-time PKI)."""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives import serialization
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gateway.config import BrokerConfig, TlsConfig
from gateway.mqtt.tls import TlsError, configure_client, is_loopback, tls_context
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
