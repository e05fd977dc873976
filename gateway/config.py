"""Gateway configuration: TOML validated by pydantic; errors name the file and the key."""

from __future__ import annotations

import difflib
import hashlib
import ipaddress
import os
import re
import stat
import tomllib
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from drivers.printers.config import PrinterConfig
from drivers.scanners.config import ScannerConfig
from gateway.feedback import FeedbackConfig
from gateway.metrics import MetricsConfig
from gateway.rules.gates import GateConfig

BizStep = Literal[
    "receiving",
    "storing",
    "picking",
    "packing",
    "unpacking",
    "shipping",
    "commissioning",
    "consuming",
    "destroying",
    "holding",
    "cycle_counting",
    "returning",
    "inspecting",
    "releasing",
    "transferring",
]
#: The station steps, in the order above.
BIZ_STEPS: tuple[str, ...] = get_args(BizStep)
Policy = Literal["accept", "warn", "reject"]
#: An optional path where an empty string means "not set".
OptPath = Annotated[Path | None, BeforeValidator(lambda v: None if v == "" else v)]


class ConfigError(Exception):
    """A configuration problem, naming the file and the key path."""

    def __init__(self, file: str, key: str, message: str) -> None:
        self.file = file
        self.key = key
        self.message = message
        where = f"{file}: {key}: " if key else f"{file}: "
        super().__init__(where + message)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GatewayIdentity(_Strict):
    """Who this gateway is: site and gateway id appear in every topic and event."""

    @field_validator("id")
    @classmethod
    def _not_reserved(cls, v: str) -> str:
        if v == "cache":
            raise ValueError("'cache' is reserved (the site-wide master data topics)")
        return v

    site: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    gln: str = Field(default="", pattern=r"^(\d{13})?$", description="GLN of the site.")


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class TlsConfig(_Strict):
    """MQTT TLS. Verification is always on when TLS is enabled; there is no plaintext fallback.

    ``enabled`` unset means: TLS for every broker except one on this machine (loopback).
    """

    enabled: bool | None = None
    ca_file: OptPath = None
    cert_file: OptPath = None
    key_file: OptPath = None
    server_hostname: str = ""


class BrokerConfig(_Strict):
    """The MQTT broker the gateway publishes to."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    tls: TlsConfig = TlsConfig()
    username: str = ""
    password_file: OptPath = None
    password_env: str = Field(default="", description="Name of an env var holding the password.")
    client_id: str = Field(default="", description="Default: traceway-{site}-{gateway id}.")
    keepalive: int = Field(default=30, ge=5, le=3600)
    session_expiry: int = Field(default=7 * 24 * 3600, ge=0, description="Seconds.")
    max_inflight: int = Field(default=100, ge=1, le=1000)
    separate_process: bool = Field(
        default=True,
        description="Run the MQTT client in its own process (its own GIL, so the writer "
        "keeps a core); false: a thread of the daemon.",
    )
    reconnect_min_delay: float = Field(default=1.0, gt=0, description="Seconds.")
    reconnect_max_delay: float = Field(default=30.0, gt=0, description="Seconds.")
    topic_prefix: str = "traceway/v1"

    @property
    def use_tls(self) -> bool:
        """Whether to connect with TLS: as configured, else on unless the broker is loopback."""
        if self.tls.enabled is not None:
            return self.tls.enabled
        return not is_loopback(self.host)

    @property
    def has_credentials(self) -> bool:
        """Whether a username or a password source is configured."""
        return bool(self.username or self.password_file is not None or self.password_env)

    def password(self) -> str | None:
        """The broker password from the environment or a file; never from the config itself."""
        if self.password_env and self.password_env in os.environ:
            return os.environ[self.password_env]
        if self.password_file is not None:
            return self.password_file.read_text(encoding="utf-8").strip()
        return None


class StorageConfig(_Strict):
    """Where the gateway keeps its state (SQLite)."""

    path: Path = Path("/var/lib/traceway/traceway.db")
    synchronous: Literal["FULL", "NORMAL", "EXTRA"] = "FULL"
    outbox_capacity: int = Field(default=1_000_000, ge=100)
    outbox_high_watermark: float = Field(default=0.8, gt=0, lt=1)
    outbox_low_watermark: float = Field(default=0.6, gt=0, lt=1)
    max_group: int = Field(default=256, ge=1, description="Most scans in one group commit.")
    commit_delay_ms: float = Field(
        default=6.0,
        ge=0,
        le=50,
        description="While scans stream in (the previous one came at most this long ago), a "
        "commit waits up to this long (and 1.5 gaps at most) for the next scan to share its "
        "fsync; a lone scan commits at once; 0: never wait.",
    )
    keep_published_hours: float = Field(
        default=168.0, ge=0, description="Published events are deleted after this many hours."
    )
    history_days: float = Field(
        default=90, ge=0, description="Local movement history kept for `traceway trace`."
    )
    expiry_check_interval: float = Field(
        default=3600,
        ge=0,
        description="Seconds between expiry checks (expiry_warning / expired_in_stock alerts, "
        "once per lot and location per day); also checked at start; 0: never.",
    )
    max_size_mb: int = Field(
        default=0,
        ge=0,
        description="Largest the database may grow (MB); 0: until the disk is full.",
    )

    @model_validator(mode="after")
    def _watermarks(self) -> StorageConfig:
        if self.outbox_low_watermark >= self.outbox_high_watermark:
            raise ValueError("outbox_low_watermark must be below outbox_high_watermark")
        return self


class StationConfig(_Strict):
    """A place where scans happen: binds scanners to a business step and location."""

    step: BizStep
    read_point: str = Field(
        default="",
        description="GLN, GLN/extension, URI or local id of the read point; default the station.",
    )
    biz_location: str = Field(default="", description="GLN or id of the business location.")
    location: str = Field(default="", description="Initial storage location for movements.")
    unknown_gtin: Policy = "reject"
    fefo: Policy = "warn"
    near_expiry: Policy = "warn"
    duplicate_window: float = Field(
        default=5.0,
        ge=0,
        description="Seconds: a serial or SSCC scanned again within it is a duplicate.",
    )
    case_debounce: float = Field(
        default=0.5,
        ge=0,
        le=1.0,
        description="Seconds: an identical non-serialised label within it is a double trigger; "
        "after it, it is another case and counts.",
    )
    default_quantity: int = Field(default=1, ge=1)
    destination: str = Field(
        default="",
        description="Shipments: the receiving party (GLN or id); other moves: a location.",
    )
    source: str = Field(
        default="",
        description="Receipts: the supplying party (GLN or id); other moves: the location "
        "stock is taken from.",
    )
    quarantine_location: str = Field(
        default="QUARANTINE", description="Where returns go; not pickable until released."
    )
    consumption: Literal["fefo", "fifo", "none"] = Field(
        default="fefo",
        description="Which lot to take first: earliest expiry, earliest receipt, or no rule; "
        "a violation follows the `fefo` policy.",
    )
    scrap_reasons: list[str] = Field(
        default=["damaged", "expired", "contaminated", "recalled", "other"],
        description="Reasons a scrap may carry (REASON:<code> before the item); [] = none needed.",
    )
    insufficient_stock: Literal["reject", "warn"] = Field(
        default="reject",
        description="A move of more than the source holds: reject, or move what is there.",
    )
    print_on_accept: str = Field(default="", description="Template to print on accepted scans.")
    printer: str = Field(default="", description="Printer for print_on_accept.")
    gate: GateConfig = GateConfig()
    feedback: FeedbackConfig = FeedbackConfig()


class PatternConfig(_Strict):
    """A regex that turns a non-GS1 barcode into a location or command."""

    kind: Literal["location", "command"]
    regex: str
    name: str = ""

    @field_validator("regex")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from exc
        return v


class CacheConfig(_Strict):
    """Master data: CSV files imported at first start when the cache is empty (demo)."""

    seed_products: OptPath = None
    seed_lots: OptPath = None
    seed_serials: OptPath = None


class LoggingConfig(_Strict):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class GatewayConfig(_Strict):
    """The whole gateway configuration."""

    gateway: GatewayIdentity
    broker: BrokerConfig = BrokerConfig()
    storage: StorageConfig = StorageConfig()
    stations: dict[str, StationConfig]
    scanners: dict[str, ScannerConfig] = {}
    printers: dict[str, PrinterConfig] = {}
    patterns: list[PatternConfig] = []
    cache: CacheConfig = CacheConfig()
    logging: LoggingConfig = LoggingConfig()
    metrics: MetricsConfig = MetricsConfig()

    @model_validator(mode="after")
    def _references(self) -> GatewayConfig:
        for name, sc in self.scanners.items():
            if sc.type == "phone" and not re.match(r"^[A-Za-z0-9_.-]{1,31}$", name):
                raise ValueError(
                    f"scanners.{name}: a phone scanner's name is 1-31 letters, digits, '.', '_' "
                    "or '-' (its phones' scans carry '<name>.<phone>' as their scanner)"
                )
            if sc.station not in self.stations:
                raise ValueError(
                    f"scanners.{name}.station: unknown station {sc.station!r} "
                    f"(known: {', '.join(sorted(self.stations)) or 'none'})"
                )
        for name, st in self.stations.items():
            if st.printer and st.printer not in self.printers:
                raise ValueError(f"stations.{name}.printer: unknown printer {st.printer!r}")
            if st.print_on_accept and not st.printer:
                raise ValueError(f"stations.{name}.printer: required with print_on_accept")
        b = self.broker
        if b.enabled and not b.use_tls and not is_loopback(b.host) and b.has_credentials:
            raise ValueError(
                f"broker.tls.enabled: TLS is off, so the MQTT credentials would go in plaintext "
                f"to {b.host}; remove 'enabled = false' from [broker.tls] (TLS is then on for "
                "any broker not on this machine) or drop the credentials"
            )
        return self

    @property
    def client_id(self) -> str:
        return self.broker.client_id or f"traceway-{self.gateway.site}-{self.gateway.id}"


def _loc(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        elif p in ("replay", "serial", "tcp", "evdev", "hidpos", "phone") and parts:
            continue  # discriminator tag that pydantic adds to the location
        else:
            parts.append(("." if parts else "") + str(p))
    return "".join(parts)


def parse_config(text: str, file: str = "<config>", base: Path | None = None) -> GatewayConfig:
    """Parse and validate TOML text. Relative paths are resolved against ``base``."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file, "", f"not valid TOML: {exc}") from exc
    try:
        cfg = GatewayConfig.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        key = _loc(loc)
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = unknown_key_message(loc)
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
            if ": " in msg and msg.split(": ", 1)[0].replace(".", "").replace("_", "").isalnum():
                key, msg = msg.split(": ", 1)
        more = f" (and {len(exc.errors()) - 1} more problem(s))" if len(exc.errors()) > 1 else ""
        raise ConfigError(file, key, msg + more) from exc
    return _with_base(cfg, base) if base is not None else cfg


#: Keys people put in the config that must not be there, with what to do instead.
_MISPLACED: dict[tuple[str, str], str] = {
    ("BrokerConfig", "password"): (
        "the password is never read from the config file; write it to a file readable "
        "only by the service (chmod 600) and set password_file to its path, or set "
        "password_env to the name of an environment variable that holds it"
    ),
}


def unknown_key_message(loc: tuple[int | str, ...]) -> str:
    """What to say about a key that is not in the schema: a hint, or "did you mean …?"."""
    name = str(loc[-1])
    model = _model_at(loc[:-1])
    if model is None:
        return f"unknown key {name!r}"
    hint = _MISPLACED.get((model.__name__, name))
    if hint is not None:
        return f"unknown key {name!r}: {hint}"
    known = sorted(model.model_fields)
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if close:
        return f"unknown key {name!r}; did you mean {close[0]!r}?"
    return f"unknown key {name!r} (known: {', '.join(known)})"


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model class that validates the table at ``loc`` (None when it cannot be told)."""
    t: Any = GatewayConfig
    for part in loc:
        t = _unwrap(t)
        if isinstance(t, type) and issubclass(t, BaseModel):
            field = t.model_fields.get(str(part))
            if field is None:
                return None
            t = field.annotation
        elif get_origin(t) is dict:
            t = get_args(t)[1]
        elif get_origin(t) is list:
            t = get_args(t)[0]
        elif get_origin(t) in (Union, UnionType):
            t = _tagged_member(get_args(t), part)
            if t is None:
                return None
        else:
            return None
    t = _unwrap(t)
    return t if isinstance(t, type) and issubclass(t, BaseModel) else None


def _unwrap(t: Any) -> Any:
    """``Annotated[X, …]`` → X; ``X | None`` → X."""
    while True:
        if get_origin(t) is Annotated:
            t = get_args(t)[0]
            continue
        if get_origin(t) in (Union, UnionType):
            members = [a for a in get_args(t) if a is not type(None)]
            if len(members) == 1:
                t = members[0]
                continue
        return t


def _tagged_member(members: tuple[Any, ...], tag: int | str) -> Any:
    """The member of a discriminated union whose Literal tag is ``tag`` (pydantic puts
    the tag into the error location, e.g. ``scanners.t.tcp.prot``)."""
    for m in members:
        m = _unwrap(m)
        if not (isinstance(m, type) and issubclass(m, BaseModel)):
            continue
        for field in m.model_fields.values():
            if get_origin(field.annotation) is Literal and tag in get_args(field.annotation):
                return m
    return None


def _abs(p: Path | None, base: Path) -> Path | None:
    if p is None:
        return None
    return p if p.is_absolute() else (base / p).resolve()


def _with_base(cfg: GatewayConfig, base: Path) -> GatewayConfig:
    """Resolve every relative path in ``cfg`` against ``base`` (the config file's folder)."""
    storage = cfg.storage.model_copy(update={"path": _abs(cfg.storage.path, base)})
    cache = cfg.cache.model_copy(
        update={
            "seed_products": _abs(cfg.cache.seed_products, base),
            "seed_lots": _abs(cfg.cache.seed_lots, base),
            "seed_serials": _abs(cfg.cache.seed_serials, base),
        }
    )
    tls = cfg.broker.tls.model_copy(
        update={
            "ca_file": _abs(cfg.broker.tls.ca_file, base),
            "cert_file": _abs(cfg.broker.tls.cert_file, base),
            "key_file": _abs(cfg.broker.tls.key_file, base),
        }
    )
    broker = cfg.broker.model_copy(
        update={"tls": tls, "password_file": _abs(cfg.broker.password_file, base)}
    )
    scanners = {}
    for name, sc in cfg.scanners.items():
        if sc.type == "replay":
            sc = sc.model_copy(update={"path": _abs(sc.path, base)})
        if sc.type == "phone":
            sc = sc.model_copy(
                update={"cert_file": _abs(sc.cert_file, base), "key_file": _abs(sc.key_file, base)}
            )
        scanners[name] = sc
    printers = {}
    for name, pc in cfg.printers.items():
        if pc.transport == "file":
            pc = pc.model_copy(update={"path": _abs(pc.path, base)})
        if pc.labels_dir is not None:
            pc = pc.model_copy(update={"labels_dir": _abs(pc.labels_dir, base)})
        printers[name] = pc
    return cfg.model_copy(
        update={
            "storage": storage,
            "cache": cache,
            "broker": broker,
            "scanners": scanners,
            "printers": printers,
        }
    )


def load_config(path: str | Path) -> GatewayConfig:
    """Load a config file; raises ConfigError naming the file and key on any problem."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(p), "", f"cannot read: {exc.strerror}") from exc
    return parse_config(text, str(p), p.resolve().parent)


def config_hash(path: str | Path | None, cfg: GatewayConfig | None = None) -> str:
    """Hash of the config file's bytes (16 hex digits, reported in the birth status).

    Without a file (a config built in code), the hash of ``cfg``'s canonical JSON.
    """
    if path is not None:
        data = Path(path).read_bytes()
    elif cfg is not None:
        data = cfg.model_dump_json().encode()
    else:
        raise ValueError("config_hash needs a file or a config")
    return hashlib.sha256(data).hexdigest()[:16]


def config_warnings(path: str | Path, cfg: GatewayConfig) -> list[str]:
    """Non-fatal problems: files others can change, secrets others can read."""
    out: list[str] = []
    b = cfg.broker
    if b.enabled and not b.use_tls and not is_loopback(b.host):
        out.append(f"broker.tls.enabled: TLS is off: events go unencrypted to {b.host}:{b.port}")
    if b.enabled and not b.use_tls:
        for key in ("ca_file", "cert_file", "key_file"):
            if getattr(b.tls, key) is not None:
                out.append(
                    f"broker.tls.{key}: set, but TLS is off for {b.host}, so it is not used "
                    "(set tls.enabled = true to use it)"
                )
    secrets = [f for f in (cfg.broker.password_file, cfg.broker.tls.key_file) if f is not None]
    others = [Path(path)] + [f for f in (cfg.broker.tls.ca_file, cfg.broker.tls.cert_file) if f]
    for f in others + secrets:
        try:
            mode = f.stat().st_mode
        except OSError:
            continue
        if mode & stat.S_IWOTH:
            out.append(f"{f}: writable by others (chmod o-w it)")
        if f in secrets and mode & (stat.S_IROTH | stat.S_IRGRP):
            out.append(f"{f}: holds a secret and is readable by others (chmod 600 it)")
    return out
