"""Configuration models for scanner readers (validated by pydantic)."""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from drivers.scanners.escapes import unescape

#: An optional path where an empty string means "not set".
OptPath = Annotated[Path | None, BeforeValidator(lambda v: None if v == "" else v)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FramerConfig(_Strict):
    """How a byte stream is cut into frames and a frame into codes."""

    terminator: str = Field(
        default="\r\n|\r|\n",
        description="Frame terminators, '|'-separated alternatives; escapes like \\r allowed. "
        "Empty string: no terminator (use stx_etx or idle_timeout).",
    )
    stx_etx: bool = Field(default=False, description="Frames are STX (0x02) ... ETX (0x03).")
    idle_timeout: float = Field(
        default=0.0, ge=0.0, description="Seconds of silence that end a frame; 0 disables."
    )
    max_length: int = Field(default=4096, ge=16, description="Longest frame in bytes.")
    no_read: str = Field(default="", description="Token a reader sends when it read nothing.")
    separator: str = Field(
        default="", description="Separates several codes in one frame (e.g. ';'); empty: one code."
    )
    heartbeat: str = Field(default="", description="A frame equal to this is a heartbeat.")
    heartbeat_interval: float = Field(
        default=0.0, ge=0.0, description="Expected heartbeat period in s; 0: none expected."
    )
    encoding: str = Field(default="latin-1", description="Byte to text decoding.")

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, v: str) -> str:
        try:
            codecs.lookup(v)
        except LookupError:
            raise ValueError(f"unknown encoding {v!r}") from None
        return v

    @model_validator(mode="after")
    def _frames_can_end(self) -> FramerConfig:
        if self.terminator and any(a == "" for a in self.terminator.split("|")):
            raise ValueError(f"terminator {self.terminator!r} has an empty alternative")
        if self.terminator:
            for alt in self.terminator.split("|"):
                unescape(alt).encode(self.encoding)
        if not (self.terminator or self.stx_etx or self.idle_timeout > 0):
            raise ValueError("frames never end: set terminator, stx_etx or idle_timeout")
        return self


class _ScannerBase(_Strict):
    station: str = Field(description="Name of the station this scanner belongs to.")
    enabled: bool = True


class ReplayScanner(_ScannerBase):
    """Replays a file, one scan per line (escapes like \\x1d and an AIM prefix allowed)."""

    type: Literal["replay"]
    path: Path
    interval: float = Field(default=0.2, ge=0.0, description="Seconds between scans.")
    loop: bool = False
    start_delay: float = Field(default=0.0, ge=0.0)


class SerialScanner(_ScannerBase):
    """A scanner on a serial port (RS-232 or USB CDC-ACM)."""

    type: Literal["serial"]
    port: str = Field(description="Prefer /dev/serial/by-id/... names.")
    baudrate: int = 9600
    bytesize: Literal[5, 6, 7, 8] = 8
    parity: Literal["N", "E", "O", "M", "S"] = "N"
    stopbits: Literal[1, 2] = 1
    rtscts: bool = False
    framing: FramerConfig = FramerConfig()
    good_read_bytes: str = Field(default="", description="Bytes sent to the scanner on accept.")
    bad_read_bytes: str = Field(default="", description="Bytes sent to the scanner on reject.")

    @field_validator("good_read_bytes", "bad_read_bytes")
    @classmethod
    def _latin1_bytes(cls, v: str) -> str:
        unescape(v).encode("latin-1")  # escapes like \x07; every char must be one byte
        return v


class TcpScanner(_ScannerBase):
    """A fixed-mount reader speaking TCP: we connect to it, or it connects to us."""

    type: Literal["tcp"]
    mode: Literal["connect", "listen"] = "connect"
    host: str = "127.0.0.1"
    port: int = Field(ge=1, le=65535)
    framing: FramerConfig = FramerConfig()
    connect_timeout: float = 5.0
    max_clients: int = Field(
        default=8,
        ge=1,
        le=256,
        description="listen mode: readers served at once, each with its own framing; "
        "a connection beyond this is closed at once (never replaces a connected reader).",
    )


class EvdevScanner(_ScannerBase):
    """A USB keyboard-wedge scanner read through Linux evdev."""

    type: Literal["evdev"]
    device: str = Field(
        default="", description="/dev/input/by-id/... or by-path link, or a /dev/input/eventN."
    )
    name: str = Field(default="", description="Match by device name (substring).")
    vendor_product: str = Field(default="", description="Match by 'vvvv:pppp' (hex).")
    layout: Literal["us", "de", "fr", "uk"] = "us"
    gs_substitute: str = Field(default="", description="A character the scanner sends for GS.")
    terminators: list[Literal["enter", "kp_enter", "tab"]] = ["enter", "kp_enter"]
    idle_timeout: float = Field(default=0.0, ge=0.0)
    max_length: int = 4096
    grab: bool = True


class HidPosScanner(_ScannerBase):
    """A scanner in USB HID POS mode (usage page 0x8C), read from hidraw."""

    type: Literal["hidpos"]
    device: str = Field(default="", description="/dev/hidrawN or a udev symlink.")
    vendor_product: str = Field(default="")


class PhoneScanner(_ScannerBase):
    """Smartphones scanning with their camera: a page and a WebSocket served over HTTPS."""

    type: Literal["phone"]
    host: str = Field(
        description="Address to bind: the interface the phones reach (e.g. the Wi-Fi "
        "address); '0.0.0.0' means every interface."
    )
    port: int = Field(default=8443, ge=1, le=65535)
    hostnames: list[str] = Field(
        default=[],
        description="Names/addresses phones use to reach the gateway; the first is in the "
        "pairing QR code; all go into a self-made certificate and are the only page origins "
        "accepted. Default: this machine's address on the network and its .local name.",
    )
    cert_file: OptPath = Field(
        default=None, description="PEM certificate (chain); default: one the gateway makes."
    )
    key_file: OptPath = Field(default=None, description="PEM private key for cert_file.")
    pairing_ttl: float = Field(
        default=600, gt=0, le=86400, description="Seconds a pairing code stays valid."
    )
    pair_at_start: bool = Field(
        default=True,
        description="Print a pairing QR code on the console at start while no phone is paired.",
    )
    max_devices: int = Field(default=16, ge=1, le=256, description="Phones paired at once.")
    max_connections: int = Field(
        default=32, ge=1, le=1024, description="Connections served at once (paired or not)."
    )
    max_length: int = Field(
        default=4096,
        ge=16,
        le=4096,
        description="Longest code in characters (frame_too_long); events hold at most 4096.",
    )
    rate: float = Field(
        default=5.0, gt=0, le=100, description="Scans per second a phone may send (sustained)."
    )
    burst: int = Field(default=10, ge=1, le=1000, description="Scans a phone may send at once.")
    max_pending: int = Field(
        default=16,
        ge=1,
        le=1000,
        description="Scans of one phone waiting for their verdict; more are refused unsent.",
    )

    @field_validator("hostnames")
    @classmethod
    def _plain_names(cls, v: list[str]) -> list[str]:
        for h in v:
            if not h or (any(c in h for c in "/:@ []") and not _is_ipv6(h)):
                raise ValueError(f"{h!r} is not a host name or address (no scheme, no port)")
        return v

    @model_validator(mode="after")
    def _cert_and_key(self) -> PhoneScanner:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (or neither: a self-made one)")
        return self


def _is_ipv6(h: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(h).version == 6
    except ValueError:
        return False


ScannerConfig = Annotated[
    ReplayScanner | SerialScanner | TcpScanner | EvdevScanner | HidPosScanner | PhoneScanner,
    Field(discriminator="type"),
]
