"""Paired phones and open pairing codes of one phone scanner, in a small JSON file.

Why a file and not the gateway's SQLite state: the pairing command (``traceway
phone-pair``) runs in another process while the daemon's single writer owns the
database; a second writer there would break that rule for data that is not
traceability data at all. The registry is tiny, rarely written, and must be readable
and revocable while the gateway runs. So it is ``<state dir>/phone-<scanner>/devices.json``
(mode 0600), changed under an ``flock`` and replaced atomically (write, fsync, rename):
a crash leaves the old or the new file, never half of one. The daemon re-reads it when
its modification time changes, so a revocation takes effect within a second.

Only SHA-256 hashes of the pairing codes and device tokens are stored (both are 128+
random bits, so a plain hash is enough), with each phone's public key: a device token
alone is useless without the phone's non-extractable private key.

Pure parts (:func:`add_pairing`, :func:`consume_pairing`, :func:`add_device`,
:func:`revoke`, :func:`active_devices`) work on the decoded dict.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Data = dict[str, Any]


def empty() -> Data:
    return {"version": 1, "devices": [], "pairings": []}


def digest(token: str) -> str:
    """SHA-256 hex of a token (what is stored)."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Device:
    id: str
    name: str
    token_sha256: str
    public_key: str  # base64 DER SPKI
    paired_at: float
    revoked_at: float | None = None

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Device:
        return cls(
            str(d["id"]),
            str(d["name"]),
            str(d["token_sha256"]),
            str(d["public_key"]),
            float(d["paired_at"]),
            None if d.get("revoked_at") is None else float(d["revoked_at"]),
        )

    def token_matches(self, token: str) -> bool:
        return hmac.compare_digest(self.token_sha256, digest(token))


def active_devices(data: Data) -> list[Device]:
    """Paired and not revoked, in pairing order."""
    out = [Device.from_json(d) for d in data.get("devices", [])]
    return [d for d in out if d.revoked_at is None]


def find_device(data: Data, device_id: str) -> Device | None:
    """The device with this id (revoked or not)."""
    for d in data.get("devices", []):
        if hmac.compare_digest(str(d.get("id", "")), device_id):
            return Device.from_json(d)
    return None


def add_pairing(data: Data, token: str, now: float, ttl: float) -> None:
    """Open a one-time pairing code valid for ``ttl`` seconds (expired ones are dropped)."""
    data["pairings"] = [p for p in data.get("pairings", []) if p["expires_at"] > now]
    data["pairings"].append({"token_sha256": digest(token), "expires_at": now + ttl})


def pairing_open(data: Data, token: str, now: float) -> bool:
    """True if ``token`` is an open, unexpired pairing code (it stays open)."""
    h = digest(token)
    return any(
        hmac.compare_digest(p["token_sha256"], h) and p["expires_at"] > now
        for p in data.get("pairings", [])
    )


def consume_pairing(data: Data, token: str, now: float) -> bool:
    """Use up a pairing code: True if it was open and not expired (it is gone either way)."""
    h = digest(token)
    found = False
    keep = []
    for p in data.get("pairings", []):
        if hmac.compare_digest(p["token_sha256"], h):
            found = p["expires_at"] > now
        elif p["expires_at"] > now:
            keep.append(p)
    data["pairings"] = keep
    return found


class PairingRefused(Exception):
    """Why a phone cannot be paired (``code``: for the phone)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def add_device(
    data: Data, name: str, token: str, public_key: str, now: float, max_devices: int
) -> Device:
    """Register a phone (a new id); the name must be free among active phones."""
    active = active_devices(data)
    if any(d.name.lower() == name.lower() for d in active):
        raise PairingRefused(
            "name_taken", f"a phone named {name!r} is already paired; choose another name"
        )
    if len(active) >= max_devices:
        raise PairingRefused(
            "too_many_devices",
            f"{max_devices} phones are paired (max_devices); revoke one first",
        )
    dev = Device(secrets.token_urlsafe(16), name, digest(token), public_key, now)
    data.setdefault("devices", []).append(
        {
            "id": dev.id,
            "name": dev.name,
            "token_sha256": dev.token_sha256,
            "public_key": dev.public_key,
            "paired_at": dev.paired_at,
            "revoked_at": None,
        }
    )
    return dev


def revoke(data: Data, name: str, now: float) -> bool:
    """Revoke the active phone called ``name``; False if there is none."""
    for d in data.get("devices", []):
        if d["name"].lower() == name.lower() and d.get("revoked_at") is None:
            d["revoked_at"] = now
            return True
    return False


class Registry:
    """The file shell: locked read-modify-write with an atomic replace."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mtime: int | None = None
        self._data: Data = empty()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _read(self) -> Data:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return empty()
        if not isinstance(data, dict) or data.get("version") != 1:
            raise ValueError(f"{self.path}: not a traceway phone registry")
        return data

    def load(self) -> Data:
        """The registry (re-read only when the file changed)."""
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            mtime = None
        if mtime != self._mtime:
            self._data = self._read()
            self._mtime = mtime
        return self._data

    def changed(self) -> bool:
        """True when the file changed since the last :meth:`load`."""
        try:
            return self.path.stat().st_mtime_ns != self._mtime
        except FileNotFoundError:
            return self._mtime is not None

    def update(self, fn: Callable[[Data], Any]) -> Any:
        """Apply ``fn`` to the current data under the lock and write the result atomically."""
        with self._locked():
            data = self._read()
            result = fn(data)
            tmp = self.path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=1)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            self._data, self._mtime = data, self.path.stat().st_mtime_ns
            return result

    def open_pairing(self, ttl: float, now: float | None = None) -> str:
        """A new one-time pairing code (returned once, stored hashed)."""
        token = secrets.token_urlsafe(16)
        self.update(lambda d: add_pairing(d, token, time.time() if now is None else now, ttl))
        return token
