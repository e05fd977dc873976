"""API bearer tokens: random, shown once, stored as salted SHA-256 digests.

A token reads ``tw_<id>_<secret>``: ``id`` finds the row, the secret (32 random bytes)
is checked against ``sha256(salt || secret)`` in constant time. A fast hash is enough for
a 256-bit random secret (nothing to brute-force, unlike a password) and keeps each
request cheap. Tokens live in the ``api_tokens`` table, or in ``api.token_file`` (one
JSON object per line, same fields) when the config names one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, Protocol

from sqlalchemy import Engine, text

Role = Literal["viewer", "recall-manager", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "recall-manager", "admin")


class TokenError(ValueError):
    """A token that cannot be added (duplicate name, unknown role)."""


@dataclass(frozen=True, slots=True)
class TokenRow:
    token_id: str
    name: str
    role: Role
    salt: bytes
    digest: bytes
    revoked: bool = False


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's name and role."""

    name: str
    role: Role

    def may(self, role: Role) -> bool:
        """True when this principal's role is ``role`` or above."""
        return ROLES.index(self.role) >= ROLES.index(role)


def digest(salt: bytes, secret: str) -> bytes:
    return hashlib.sha256(salt + secret.encode("utf-8")).digest()


def new_token(name: str, role: str) -> tuple[str, TokenRow]:
    """A fresh token (to print once) and the row that stores only its digest."""
    if role not in ROLES:
        raise TokenError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if not name.strip() or len(name) > 64:
        raise TokenError("name must be 1-64 characters")
    token_id, secret, salt = secrets.token_hex(6), secrets.token_urlsafe(32), os.urandom(16)
    row = TokenRow(token_id, name.strip(), role, salt, digest(salt, secret))  # type: ignore[arg-type]
    return f"tw_{token_id}_{secret}", row


def split_token(token: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed token, else None."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != "tw" or len(parts[1]) != 12 or not parts[2]:
        return None
    return parts[1], parts[2]


def check(row: TokenRow | None, secret: str) -> Principal | None:
    """The principal when ``secret`` matches the (unrevoked) row."""
    if row is None or row.revoked:
        return None
    if not hmac.compare_digest(digest(row.salt, secret), row.digest):
        return None
    return Principal(row.name, row.role)


class TokenStore(Protocol):
    def add(self, row: TokenRow) -> None: ...
    def get(self, token_id: str) -> TokenRow | None: ...
    def revoke(self, name: str) -> bool: ...
    def rows(self) -> list[TokenRow]: ...


def authenticate(store: TokenStore, token: str) -> Principal | None:
    """The principal of a bearer token, or None."""
    parts = split_token(token)
    if parts is None:
        return None
    return check(store.get(parts[0]), parts[1])


class DbTokenStore:
    """Tokens in the ``api_tokens`` table."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, row: TokenRow) -> None:
        with self.engine.begin() as c:
            taken = c.execute(
                text("SELECT 1 FROM api_tokens WHERE name = :n"), {"n": row.name}
            ).first()
            if taken:
                raise TokenError(f"a token named {row.name!r} exists (revoke it first)")
            c.execute(
                text(
                    "INSERT INTO api_tokens(token_id, name, role, salt, digest, created_at) "
                    "VALUES (:i, :n, :r, :s, :d, :t)"
                ),
                {
                    "i": row.token_id,
                    "n": row.name,
                    "r": row.role,
                    "s": row.salt,
                    "d": row.digest,
                    "t": datetime.now(UTC),
                },
            )

    def get(self, token_id: str) -> TokenRow | None:
        with self.engine.connect() as c:
            r = c.execute(
                text(
                    "SELECT token_id, name, role, salt, digest, revoked_at IS NOT NULL "
                    "FROM api_tokens WHERE token_id = :i"
                ),
                {"i": token_id},
            ).first()
        return TokenRow(r[0], r[1], r[2], bytes(r[3]), bytes(r[4]), r[5]) if r else None

    def revoke(self, name: str) -> bool:
        with self.engine.begin() as c:
            n = c.execute(
                text(
                    "UPDATE api_tokens SET revoked_at = now(), name = name || '#' || token_id "
                    "WHERE name = :n AND revoked_at IS NULL"
                ),
                {"n": name},
            ).rowcount
        return bool(n)

    def rows(self) -> list[TokenRow]:
        with self.engine.connect() as c:
            rows = c.execute(
                text(
                    "SELECT token_id, name, role, salt, digest, revoked_at IS NOT NULL "
                    "FROM api_tokens ORDER BY created_at"
                )
            ).all()
        return [TokenRow(r[0], r[1], r[2], bytes(r[3]), bytes(r[4]), r[5]) for r in rows]


class FileTokenStore:
    """Tokens in a file, one JSON object per line (digests only; mode 0600)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def rows(self) -> list[TokenRow]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                d = json.loads(line)
                out.append(
                    TokenRow(
                        d["id"],
                        d["name"],
                        d["role"],
                        bytes.fromhex(d["salt"]),
                        bytes.fromhex(d["digest"]),
                        bool(d.get("revoked", False)),
                    )
                )
        return out

    def _write(self, rows: list[TokenRow]) -> None:
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for r in rows:
                f.write(
                    json.dumps(
                        {
                            "id": r.token_id,
                            "name": r.name,
                            "role": r.role,
                            "salt": r.salt.hex(),
                            "digest": r.digest.hex(),
                            "revoked": r.revoked,
                        }
                    )
                    + "\n"
                )
        os.replace(tmp, self.path)

    def add(self, row: TokenRow) -> None:
        rows = self.rows()
        if any(r.name == row.name and not r.revoked for r in rows):
            raise TokenError(f"a token named {row.name!r} exists (revoke it first)")
        self._write([*rows, row])

    def get(self, token_id: str) -> TokenRow | None:
        return next((r for r in self.rows() if r.token_id == token_id), None)

    def revoke(self, name: str) -> bool:
        rows = self.rows()
        hit = [r for r in rows if r.name == name and not r.revoked]
        if not hit:
            return False
        self._write(
            [
                TokenRow(r.token_id, r.name, r.role, r.salt, r.digest, True) if r in hit else r
                for r in rows
            ]
        )
        return True
