"""The central service's configuration: TOML validated by pydantic; errors name file and key."""

from __future__ import annotations

import ipaddress
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class ConfigError(Exception):
    """A config problem: the file, the key path and what is wrong."""

    def __init__(self, file: str | Path, key: str, message: str) -> None:
        self.file, self.key, self.message = str(file), key, message
        super().__init__(f"{file}: {key}: {message}" if key else f"{file}: {message}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseConfig(_Strict):
    """PostgreSQL: a URL (``postgresql://user@host:port/db``) or ``DATABASE_URL``."""

    url: str = Field(default="", description="SQLAlchemy/psycopg URL; empty: $DATABASE_URL.")
    pool_size: int = Field(default=5, ge=1, le=100)

    def resolved_url(self) -> str:
        """The URL to connect with (``postgresql+psycopg://…``)."""
        url = self.url or os.environ.get("DATABASE_URL", "")
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        return url


class TlsConfig(_Strict):
    enabled: bool | None = Field(default=None, description="None: on unless the broker is local.")
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None


class BrokerConfig(_Strict):
    """The MQTT broker every gateway publishes to."""

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    client_id: str = "traceway-central"
    username: str = ""
    password_file: Path | None = None
    password_env: str = ""
    topic_prefix: str = "traceway/v1"
    share_group: str = Field(default="traceway-central", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    tls: TlsConfig = TlsConfig()

    @property
    def is_local(self) -> bool:
        """True for a broker on this machine (loopback)."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def use_tls(self) -> bool:
        return self.tls.enabled if self.tls.enabled is not None else not self.is_local


class IngestConfig(_Strict):
    max_batch: int = Field(default=500, ge=1, le=10_000, description="Events per commit.")
    max_wait_ms: int = Field(default=20, ge=0, le=5000, description="Gather a batch this long.")
    republish_after_s: float = Field(
        default=30.0,
        ge=0,
        le=86_400,
        description="serve: ask a gateway to republish a seq gap open this long (0: never).",
    )


class ApiConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8380, ge=1, le=65535)
    token_file: Path | None = Field(default=None, description="Hashed API tokens (see README).")


class WebConfig(_Strict):
    enabled: bool = Field(default=True, description="Serve the web UI under /ui.")
    session_hours: float = Field(default=12, gt=0, le=168, description="Login lifetime.")
    secure_cookies: bool | None = Field(
        default=None, description="Cookies only over HTTPS; unset: on unless on loopback."
    )


class CentralConfig(_Strict):
    """The whole central configuration."""

    database: DatabaseConfig = DatabaseConfig()
    broker: BrokerConfig = BrokerConfig()
    ingest: IngestConfig = IngestConfig()
    api: ApiConfig = ApiConfig()
    web: WebConfig = WebConfig()
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


def _key(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc)


def parse_config(text: str, file: str | Path = "<config>") -> CentralConfig:
    """Parse TOML text; raises ConfigError naming the file and the key."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file, "", f"not valid TOML: {exc}") from None
    try:
        cfg = CentralConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        raise ConfigError(file, _key(err["loc"]), msg) from None
    base = Path(file).resolve().parent if str(file) != "<config>" else Path.cwd()

    def rel(p: Path | None) -> Path | None:
        return p if p is None or p.is_absolute() else base / p

    tls = cfg.broker.tls.model_copy(
        update={
            "ca_file": rel(cfg.broker.tls.ca_file),
            "cert_file": rel(cfg.broker.tls.cert_file),
            "key_file": rel(cfg.broker.tls.key_file),
        }
    )
    broker = cfg.broker.model_copy(
        update={"tls": tls, "password_file": rel(cfg.broker.password_file)}
    )
    api = cfg.api.model_copy(update={"token_file": rel(cfg.api.token_file)})
    cfg = cfg.model_copy(update={"broker": broker, "api": api})
    if not cfg.database.resolved_url():
        raise ConfigError(file, "database.url", "no database: set database.url or DATABASE_URL")
    if (
        cfg.broker.use_tls is False
        and not cfg.broker.is_local
        and (cfg.broker.username or cfg.broker.password_file or cfg.broker.password_env)
    ):
        raise ConfigError(
            file,
            "broker.tls.enabled",
            f"TLS is off, so the MQTT credentials would go in plaintext to {cfg.broker.host}",
        )
    return cfg


def load_config(path: str | Path) -> CentralConfig:
    """Read and validate a config file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(p, "", f"cannot read: {exc.strerror}") from None
    return parse_config(text, p)
