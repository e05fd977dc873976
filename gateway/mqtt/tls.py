"""MQTT TLS and credentials from config: verification always on, no plaintext fallback.

``tls_context`` builds the ``ssl.SSLContext`` handed to paho with
``client.tls_set_context``; ``configure_client`` applies TLS and the username /
password to a paho client. Secrets (passwords, key contents) are never put into
log records or exception messages.
"""

from __future__ import annotations

import socket
import ssl
from pathlib import Path
from typing import Any, Protocol

from gateway.config import BrokerConfig, TlsConfig, is_loopback


class TlsError(Exception):
    """A TLS or credential setup problem; the message names the file involved."""


class _HostnameContext(ssl.SSLContext):
    """An SSLContext that verifies a fixed server name (``tls.server_hostname``).

    paho passes the host it connects to as ``server_hostname``; this lets a
    gateway connect by IP address and still verify the name in the broker's
    certificate. Verification itself is unchanged (CERT_REQUIRED + hostname).
    """

    verify_name: str = ""

    def wrap_socket(self, sock: socket.socket, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        if self.verify_name:
            kwargs["server_hostname"] = self.verify_name
        return super().wrap_socket(sock, *args, **kwargs)


def _readable(path: Path, what: str) -> None:
    if not path.exists():
        raise TlsError(f"{path}: {what} not found")
    if not path.is_file():
        raise TlsError(f"{path}: {what} is not a regular file")
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise TlsError(f"{path}: {what} cannot be read: {exc.strerror}") from exc


def tls_context(cfg: TlsConfig) -> ssl.SSLContext:
    """An SSLContext for the broker: CERT_REQUIRED, hostname check, TLS >= 1.2.

    The CA comes from ``cfg.ca_file`` or, when unset, the system trust store.
    A client certificate is loaded when ``cfg.cert_file`` is set (the key from
    ``cfg.key_file`` or from the certificate file). Raises ``TlsError`` naming
    the file on any problem.
    """
    ctx = _HostnameContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.check_hostname = True
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_name = cfg.server_hostname

    if cfg.ca_file is not None:
        _readable(cfg.ca_file, "CA file")
        try:
            ctx.load_verify_locations(cafile=str(cfg.ca_file))
        except (ssl.SSLError, ValueError) as exc:
            raise TlsError(f"{cfg.ca_file}: not a valid PEM CA certificate file ({exc})") from exc
    else:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
        if not ctx.get_ca_certs() and not _has_default_paths():
            raise TlsError(
                "no tls.ca_file configured and the system trust store is empty "
                "(install ca-certificates or set tls.ca_file)"
            )

    if cfg.cert_file is None and cfg.key_file is not None:
        raise TlsError(f"{cfg.key_file}: tls.key_file is set but tls.cert_file is not")
    if cfg.cert_file is not None:
        _readable(cfg.cert_file, "client certificate")
        key = cfg.key_file
        if key is not None:
            _readable(key, "client key")
        where = f"{cfg.cert_file}" + (f" / {key}" if key is not None else "")

        def no_password() -> bytes:
            raise TlsError(
                f"{key or cfg.cert_file}: the private key is encrypted; "
                "use an unencrypted key file readable only by the service"
            )

        try:
            ctx.load_cert_chain(
                str(cfg.cert_file), str(key) if key is not None else None, password=no_password
            )
        except ssl.SSLError as exc:
            raise TlsError(
                f"{where}: cannot load client certificate and key "
                f"(bad PEM, or the key does not match the certificate): {exc.reason or exc}"
            ) from exc
    return ctx


def _has_default_paths() -> bool:
    paths = ssl.get_default_verify_paths()
    return bool(
        (paths.cafile and Path(paths.cafile).exists())
        or (paths.capath and Path(paths.capath).is_dir() and any(Path(paths.capath).iterdir()))
    )


class _PahoClient(Protocol):
    def tls_set_context(self, context: ssl.SSLContext | None = ...) -> None: ...
    def username_pw_set(self, username: str | None, password: str | None = ...) -> None: ...


def configure_client(client: _PahoClient, broker: BrokerConfig) -> None:
    """Apply TLS and credentials from ``broker`` to a paho client, before ``connect``.

    With TLS enabled the client only ever connects with verification on (paho
    has no fallback). Credentials are refused over plaintext to a non-loopback
    broker. Raises ``TlsError`` naming the file on a missing or unreadable secret.
    """
    if broker.use_tls:
        client.tls_set_context(tls_context(broker.tls))
    try:
        password = broker.password()
    except OSError as exc:
        raise TlsError(
            f"{broker.password_file}: broker password file cannot be read: {exc.strerror}"
        ) from exc
    if password is None and broker.password_env and broker.password_file is None:
        raise TlsError(
            f"broker.password_env: environment variable {broker.password_env} is not set"
        )
    if password is not None and not broker.username:
        raise TlsError("broker.username is required when a password is configured")
    if broker.username:
        if not broker.use_tls and not is_loopback(broker.host):
            raise TlsError(
                f"refusing to send MQTT credentials in plaintext to {broker.host}: "
                "enable [broker.tls]"
            )
        client.username_pw_set(broker.username, password)
