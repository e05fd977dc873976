"""MQTT TLS and credentials from config: verification always on, no plaintext fallback.

``tls_context`` builds the ``ssl.SSLContext`` handed to paho with
``client.tls_set_context``; ``configure_client`` applies TLS and the username /
password to a paho client; ``check_broker`` does all of that without a client, so
``check-config`` and ``run`` (before the publisher starts) refuse what the publisher
would refuse. ``connect_error_reason`` says why a connection attempt failed (TLS
verification, refused, unknown host). Secrets (passwords, key contents) are never put
into log records or exception messages.
"""

from __future__ import annotations

import errno
import os
import socket
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # the publisher process imports this module: no pydantic there
    from gateway.config import BrokerConfig


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost`` (``gateway.config.is_loopback``)."""
    from gateway.config import is_loopback as config_is_loopback

    return config_is_loopback(host)


class TlsFiles(Protocol):
    """What :func:`tls_context` reads (``TlsConfig``, or a plain copy of it)."""

    @property
    def ca_file(self) -> Path | None: ...
    @property
    def cert_file(self) -> Path | None: ...
    @property
    def key_file(self) -> Path | None: ...
    @property
    def server_hostname(self) -> str: ...


class TlsError(Exception):
    """A TLS or credential setup problem; the message names the file involved.

    ``key`` is the config key at fault (e.g. ``broker.tls.ca_file``); ``denied`` is true
    when a file exists but this user may not read it.
    """

    def __init__(self, message: str, key: str = "", *, denied: bool = False) -> None:
        super().__init__(message)
        self.key = key
        self.denied = denied


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


def _readable(path: Path, what: str, key: str) -> None:
    if not path.exists():
        raise TlsError(f"{path}: {what} not found", key)
    if not path.is_file():
        raise TlsError(f"{path}: {what} is not a regular file", key)
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        denied = exc.errno in (errno.EACCES, errno.EPERM)
        raise TlsError(
            f"{path}: {what} cannot be read: {exc.strerror}", key, denied=denied
        ) from exc


def tls_context(cfg: TlsFiles) -> ssl.SSLContext:
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
        _readable(cfg.ca_file, "CA file", CA_KEY)
        try:
            ctx.load_verify_locations(cafile=str(cfg.ca_file))
        except (ssl.SSLError, ValueError) as exc:
            raise TlsError(
                f"{cfg.ca_file}: not a valid PEM CA certificate file ({exc})", CA_KEY
            ) from exc
    else:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
        if not ctx.get_ca_certs() and not _has_default_paths():
            raise TlsError(
                "no tls.ca_file configured and the system trust store is empty "
                "(install ca-certificates or set tls.ca_file)",
                CA_KEY,
            )

    if cfg.cert_file is None and cfg.key_file is not None:
        raise TlsError(
            f"{cfg.key_file}: tls.key_file is set but tls.cert_file is not", "broker.tls.cert_file"
        )
    if cfg.cert_file is not None:
        _readable(cfg.cert_file, "client certificate", "broker.tls.cert_file")
        key = cfg.key_file
        if key is not None:
            _readable(key, "client key", "broker.tls.key_file")
        where = f"{cfg.cert_file}" + (f" / {key}" if key is not None else "")

        key_key = "broker.tls.key_file" if key is not None else "broker.tls.cert_file"

        def no_password() -> bytes:
            raise TlsError(
                f"{key or cfg.cert_file}: the private key is encrypted; "
                "use an unencrypted key file readable only by the service",
                key_key,
            )

        try:
            ctx.load_cert_chain(
                str(cfg.cert_file), str(key) if key is not None else None, password=no_password
            )
        except ssl.SSLError as exc:
            raise TlsError(
                f"{where}: cannot load client certificate and key "
                f"(bad PEM, or the key does not match the certificate): {exc.reason or exc}",
                key_key,
            ) from exc
    return ctx


CA_KEY = "broker.tls.ca_file"


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
            f"{broker.password_file}: broker password file cannot be read: {exc.strerror}",
            "broker.password_file",
            denied=exc.errno in (errno.EACCES, errno.EPERM),
        ) from exc
    if password is None and broker.password_env and broker.password_file is None:
        raise TlsError(
            f"broker.password_env: environment variable {broker.password_env} is not set",
            "broker.password_env",
        )
    if password is not None and not broker.username:
        raise TlsError(
            "broker.username is required when a password is configured", "broker.username"
        )
    if broker.username:
        if not broker.use_tls and not is_loopback(broker.host):
            raise TlsError(
                f"refusing to send MQTT credentials in plaintext to {broker.host}: "
                "enable [broker.tls]",
                "broker.tls.enabled",
            )
        client.username_pw_set(broker.username, password)


class _DryRun:
    """A stand-in paho client for ``check_broker``: accepts and forgets."""

    def tls_set_context(self, context: ssl.SSLContext | None = None) -> None:
        pass

    def username_pw_set(self, username: str | None, password: str | None = None) -> None:
        pass


def check_broker(broker: BrokerConfig, config_file: str, *, strict: bool = True) -> list[str]:
    """Refuse now what the publisher would refuse when it connects: TLS files (present,
    readable, valid PEM, key matching), the password source, credentials over plaintext.

    Raises ``ConfigError`` naming ``config_file``, the key and the file at fault.
    ``strict=False`` (``check-config``, often run by another user than the service, in a
    shell without the service's environment) turns "not readable by this user" and "the
    environment variable is not set" into the returned warnings.
    """
    from gateway.config import ConfigError

    if not broker.enabled:
        return []
    warnings: list[str] = []
    env = broker.password_env
    if not strict and env and broker.password_file is None and env not in os.environ:
        warnings.append(
            f"broker.password_env: {env} is not set here; "
            "the service must have it in its environment"
        )
        broker = broker.model_copy(update={"password_env": ""})
    try:
        configure_client(_DryRun(), broker)
    except TlsError as exc:
        msg = str(exc).removeprefix(f"{exc.key}: ").removeprefix(f"{exc.key} is ")
        if strict or not exc.denied:
            raise ConfigError(config_file, exc.key, msg) from exc
        warnings.append(f"{exc.key}: {msg} (as {_user()}; the service's user must be able to)")
    return warnings


def _user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        return f"uid {os.geteuid()}"


def connect_error_reason(exc: BaseException | None) -> str:
    """Why a connection attempt failed, in words: the TLS verification error (wrong CA,
    host name mismatch, expired), a TLS alert from the broker, refused, unknown host."""
    if exc is None:
        return "no reason given"
    if isinstance(exc, ssl.SSLCertVerificationError):
        text = exc.verify_message or getattr(exc, "reason", None) or str(exc)
        hint = ""
        if exc.verify_code in (2, 18, 19, 20, 21):  # unknown issuer, self-signed
            hint = " (is tls.ca_file the CA that signed the broker's certificate?)"
        elif exc.verify_code == 62 or "Hostname mismatch" in text:
            hint = (
                " (the broker's certificate does not name this host: connect by the name in"
                " it, or set tls.server_hostname)"
            )
        elif exc.verify_code == 10:
            hint = " (the broker's certificate has expired; or is this machine's clock wrong?)"
        return f"TLS certificate verify failed: {text}{hint}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed: {getattr(exc, 'reason', None) or exc}"
    if isinstance(exc, socket.gaierror):
        return f"host name not found ({exc.strerror or exc})"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc) or type(exc).__name__
    return str(exc) or type(exc).__name__
