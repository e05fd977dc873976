"""MQTT TLS and credentials for the central side: verification always on, no fallback.

Like the gateway's (which central must not import): ``CERT_REQUIRED`` with a host name
check and TLS >= 1.2; the CA from ``broker.tls.ca_file`` or the system store; a client
certificate when configured. The password comes from ``password_env`` or
``password_file``, never from the config itself, and is never logged.
"""

from __future__ import annotations

import os
import ssl
from typing import Protocol

from central.config import BrokerConfig, TlsConfig


class TlsError(Exception):
    """A TLS or credential problem; ``key`` is the config key at fault."""

    def __init__(self, message: str, key: str) -> None:
        super().__init__(message)
        self.key = key


def tls_context(cfg: TlsConfig) -> ssl.SSLContext:
    """A verifying client context; raises ``TlsError`` naming the file at fault."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.check_hostname = True
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cfg.ca_file is not None:
        try:
            ctx.load_verify_locations(cafile=str(cfg.ca_file))
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise TlsError(
                f"{cfg.ca_file}: cannot load the CA certificate ({exc})", "broker.tls.ca_file"
            ) from None
    else:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if cfg.key_file is not None and cfg.cert_file is None:
        raise TlsError("tls.key_file is set but tls.cert_file is not", "broker.tls.cert_file")
    if cfg.cert_file is not None:

        def no_password() -> bytes:
            raise TlsError(
                f"{cfg.key_file or cfg.cert_file}: the private key is encrypted",
                "broker.tls.key_file",
            )

        try:
            ctx.load_cert_chain(
                str(cfg.cert_file),
                str(cfg.key_file) if cfg.key_file is not None else None,
                password=no_password,
            )
        except (OSError, ssl.SSLError) as exc:
            raise TlsError(
                f"{cfg.cert_file}: cannot load the client certificate and key "
                f"({getattr(exc, 'strerror', None) or exc})",
                "broker.tls.cert_file",
            ) from None
    return ctx


def broker_password(broker: BrokerConfig) -> str | None:
    """The password from ``password_env`` or ``password_file`` (None: no password)."""
    if broker.password_env:
        if broker.password_env in os.environ:
            return os.environ[broker.password_env]
        if broker.password_file is None:
            raise TlsError(
                f"environment variable {broker.password_env} is not set", "broker.password_env"
            )
    if broker.password_file is not None:
        try:
            return broker.password_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise TlsError(
                f"{broker.password_file}: cannot read the password file ({exc.strerror})",
                "broker.password_file",
            ) from None
    return None


class _Client(Protocol):
    def tls_set_context(self, context: ssl.SSLContext | None = ...) -> None: ...
    def username_pw_set(self, username: str | None, password: str | None = ...) -> None: ...


def configure_client(client: _Client, broker: BrokerConfig) -> None:
    """TLS (verified) and credentials on a paho client, before it connects."""
    if broker.use_tls:
        client.tls_set_context(tls_context(broker.tls))
    password = broker_password(broker)
    if password is not None and not broker.username:
        raise TlsError("a password is configured but broker.username is empty", "broker.username")
    if broker.username:
        if not broker.use_tls and not broker.is_local:
            raise TlsError(
                f"refusing to send MQTT credentials in plaintext to {broker.host}",
                "broker.tls.enabled",
            )
        client.username_pw_set(broker.username, password)
