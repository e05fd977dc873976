"""The phone WebSocket protocol, pure: parsing what a phone sends, building what it gets.

Every message is one JSON object in a text frame with a ``type``. A phone is untrusted:
anything that is not exactly one of the messages below is refused with an ``error``
message (never a crash, never a scan).

Phone → gateway::

    {"type": "pair",  "pair_token": str, "name": str, "public_key": b64 SPKI, "sig": b64}
    {"type": "hello", "device_id": str, "token": str, "sig": b64}
    {"type": "scan",  "id": int, "text": str}      # AIM prefix + data, GS as U+001D
    {"type": "ping"}

Gateway → phone::

    {"type": "challenge", "nonce": str}            # first message on every connection
    {"type": "paired", "device_id", "token", "name"}
    {"type": "welcome", "name", "scanner", "station": {...}}
    {"type": "verdict", "id", "verdict", "headline", "reasons": [{code, message}], ...}
    {"type": "not_sent", "id", "reason", "message"} # refused before the pipeline
    {"type": "station", "station": {...}}          # step / location / pending QTY changed
    {"type": "error", "code", "message"}
    {"type": "pong"}
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

PROTOCOL = "traceway-phone-v1"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")  # no "." (see scanner_of)
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
_MAX_ID = 2**53 - 1  # a JavaScript number stays exact below this
HEADLINES = {
    "accept": "Accepted",
    "warn": "Recorded, with a warning",
    "reject": "Rejected: not recorded",
}


class ProtocolError(ValueError):
    """A message that is not one of the protocol's; ``code`` goes to the phone."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Pair:
    pair_token: str
    name: str
    public_key: bytes  # DER SubjectPublicKeyInfo (ECDSA P-256)
    sig: bytes  # IEEE P1363 r||s over signed_challenge(nonce)


@dataclass(frozen=True, slots=True)
class Hello:
    device_id: str
    token: str
    sig: bytes


@dataclass(frozen=True, slots=True)
class Scan:
    id: int
    text: str


@dataclass(frozen=True, slots=True)
class Ping:
    pass


ClientMessage = Pair | Hello | Scan | Ping


@dataclass(frozen=True, slots=True)
class StationView:
    """What the page shows about its station (from committed state)."""

    station: str
    step: str
    location: str
    quantity: int | None = None  # pending QTY:n for the next item scan

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.station,
            "step": self.step,
            "location": self.location,
            "quantity": self.quantity,
        }


def signed_challenge(nonce: str) -> bytes:
    """The bytes a phone signs to prove it holds its device key."""
    return f"{PROTOCOL}\n{nonce}".encode()


def _b64(value: Any, field: str, limit: int) -> bytes:
    if not isinstance(value, str) or len(value) > limit:
        raise ProtocolError("bad_message", f"{field} must be base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError("bad_message", f"{field} is not valid base64") from None


def _token(value: Any, field: str) -> str:
    if not isinstance(value, str) or not _TOKEN_RE.match(value):
        raise ProtocolError("bad_message", f"{field} is missing or malformed")
    return value


def parse_client(frame: str | bytes) -> ClientMessage:
    """One frame from a phone → a message; :class:`ProtocolError` for anything else."""
    if isinstance(frame, bytes):
        raise ProtocolError("bad_message", "binary frames are not accepted; send JSON text")
    try:
        msg = json.loads(frame)
    except (ValueError, RecursionError):
        raise ProtocolError("bad_message", "not JSON") from None
    if not isinstance(msg, dict):
        raise ProtocolError("bad_message", "a message is a JSON object")
    kind = msg.get("type")
    if kind == "scan":
        mid, text = msg.get("id"), msg.get("text")
        if isinstance(mid, bool) or not isinstance(mid, int) or not 0 <= mid <= _MAX_ID:
            raise ProtocolError("bad_message", "scan id must be a non-negative integer")
        if not isinstance(text, str) or not text:
            raise ProtocolError("bad_message", "scan text must be a non-empty string")
        try:  # a lone surrogate ("\ud800") is valid JSON but no text: it could not be stored
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ProtocolError("bad_message", "scan text is not valid Unicode") from None
        return Scan(mid, text)
    if kind == "ping":
        return Ping()
    if kind == "hello":
        return Hello(
            _token(msg.get("device_id"), "device_id"),
            _token(msg.get("token"), "token"),
            _b64(msg.get("sig"), "sig", 200),
        )
    if kind == "pair":
        name = msg.get("name")
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise ProtocolError(
                "bad_name",
                "a phone's name is 1-32 letters, digits, '_' or '-', starting with a letter "
                "or digit",
            )
        return Pair(
            _token(msg.get("pair_token"), "pair_token"),
            name,
            _b64(msg.get("public_key"), "public_key", 400),
            _b64(msg.get("sig"), "sig", 200),
        )
    raise ProtocolError("bad_message", f"unknown message type {str(kind)[:32]!r}")


def encode(msg: dict[str, Any]) -> str:
    """Compact JSON text (non-ASCII kept; control characters escaped by json)."""
    return json.dumps(msg, separators=(",", ":"), ensure_ascii=False)


def error(code: str, message: str) -> str:
    return encode({"type": "error", "code": code, "message": message})


def not_sent(mid: int, reason: str, message: str) -> str:
    return encode({"type": "not_sent", "id": mid, "reason": reason, "message": message})


def verdict_message(
    mid: int,
    verdict: str,
    reasons: list[tuple[str, str]],
    summary: str,
    seq: int | None,
    station: StationView | None,
) -> str:
    """The answer to one scan, sent after its transaction committed (or was refused)."""
    return encode(
        {
            "type": "verdict",
            "id": mid,
            "verdict": verdict,
            "headline": HEADLINES.get(verdict, verdict),
            "reasons": [{"code": c, "message": m} for c, m in reasons],
            "summary": summary,
            "seq": seq,
            "station": station.as_json() if station is not None else None,
        }
    )


def station_message(view: StationView) -> str:
    return encode({"type": "station", "station": view.as_json()})


# -- origins -----------------------------------------------------------------------------------


def origin_allowed(origin: str | None, hostnames: list[str], port: int) -> bool:
    """True when ``origin`` is ``https://<one of hostnames>[:port]`` (the page we serve).

    A page from any other origin (another site, plain http, a file) is refused, so a
    malicious page in the phone's browser can neither open the socket nor read the page.
    """
    if not origin:
        return False
    try:
        parts = urlsplit(origin)
        oport = parts.port
    except ValueError:
        return False
    if parts.scheme != "https" or parts.path not in ("", "/") or parts.query or parts.username:
        return False
    host = (parts.hostname or "").lower()
    if (oport if oport is not None else 443) != port:
        return False
    return host in {h.lower().strip("[]") for h in hostnames}


def host_of(host_header: str) -> str:
    """The host name of an HTTP ``Host`` header, lower case ("" when malformed)."""
    try:
        return (urlsplit("//" + host_header).hostname or "").lower()
    except ValueError:
        return ""


def page_url(hostname: str, port: int, pair_token: str | None = None) -> str:
    """The URL a phone opens; the pairing code travels in the fragment (never sent in HTTP)."""
    host = f"[{hostname}]" if ":" in hostname else hostname
    base = f"https://{host}" + ("" if port == 443 else f":{port}") + "/"
    return base + (f"#pair={pair_token}" if pair_token else "")


# -- flood control -----------------------------------------------------------------------------


class TokenBucket:
    """``rate`` per second sustained, ``burst`` at once (pure: times are passed in)."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate, self.burst = rate, float(burst)
        self.tokens, self._at = float(burst), now

    def take(self, now: float) -> bool:
        """One token if there is one."""
        self.tokens = min(self.burst, self.tokens + (now - self._at) * self.rate)
        self._at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False
