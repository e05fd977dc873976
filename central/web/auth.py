"""People who log in to the web UI, and their sessions.

Passwords are kept as scrypt hashes (``scrypt$n$r$p$salt$hash``, stdlib ``hashlib``).
A session is a random 32-byte secret in an HttpOnly cookie; the database keeps only its
SHA-256 and the session's CSRF token, so a stolen database row cannot log anyone in.
Five wrong passwords in a row lock the user for a quarter of an hour. Roles are those of
the API tokens (viewer < recall-manager < admin).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, text

from central.api.tokens import ROLES, Principal, Role

USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MIN_PASSWORD = 10
MAX_FAILURES = 5
LOCK_FOR = timedelta(minutes=15)
_N, _R, _P = 2**14, 8, 1


class AuthError(ValueError):
    """A user or password that cannot be used (the message says why)."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """The scrypt hash of ``password`` as one self-describing string."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    dk = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(dk)}"


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches ``stored`` (constant-time compare)."""
    try:
        scheme, n, r, p, salt, dk = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(
            password.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p), dklen=32
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, _unb64(dk))


def check_new_user(username: str, role: str, password: str) -> None:
    """Raise :class:`AuthError` when the name, role or password cannot be used."""
    if not USERNAME.match(username):
        raise AuthError(
            f"user name {username!r}: 1-64 letters, digits, '.', '_', '@', '-' (not first)"
        )
    if role not in ROLES:
        raise AuthError(f"role {role!r}: one of {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD:
        raise AuthError(f"the password needs at least {MIN_PASSWORD} characters")


def session_digest(secret: str) -> bytes:
    """What the database keeps of a session cookie."""
    return hashlib.sha256(secret.encode()).digest()


@dataclass(frozen=True, slots=True)
class Session:
    """A logged-in user: who, with which role, and the CSRF token of the session."""

    username: str
    role: Role
    csrf: str
    expires_at: datetime

    @property
    def principal(self) -> Principal:
        return Principal(f"web:{self.username}", self.role)

    def may(self, role: Role) -> bool:
        return self.principal.may(role)


# -- SQL (thin) ------------------------------------------------------------------------------


def add_user(conn: Connection, username: str, role: str, password: str, now: datetime) -> None:
    """Create a user (AuthError when the name exists or a value is unusable)."""
    check_new_user(username, role, password)
    exists = conn.execute(
        text("SELECT 1 FROM web_users WHERE username = :u"), {"u": username}
    ).first()
    if exists is not None:
        raise AuthError(f"user {username!r} exists")
    conn.execute(
        text(
            "INSERT INTO web_users(username, role, password_hash, created_at) "
            "VALUES (:u, :r, :h, :t)"
        ),
        {"u": username, "r": role, "h": hash_password(password), "t": now},
    )


def set_password(conn: Connection, username: str, password: str) -> bool:
    """Change a password (and unlock); False when there is no such user."""
    if len(password) < MIN_PASSWORD:
        raise AuthError(f"the password needs at least {MIN_PASSWORD} characters")
    res = conn.execute(
        text(
            "UPDATE web_users SET password_hash = :h, failed_logins = 0, locked_until = NULL "
            "WHERE username = :u"
        ),
        {"u": username, "h": hash_password(password)},
    )
    return bool(res.rowcount)


def disable_user(conn: Connection, username: str, now: datetime) -> bool:
    """Disable a user and end their sessions; False when there is no such active user."""
    res = conn.execute(
        text("UPDATE web_users SET disabled_at = :t WHERE username = :u AND disabled_at IS NULL"),
        {"u": username, "t": now},
    )
    conn.execute(
        text("UPDATE web_sessions SET ended_at = :t WHERE username = :u AND ended_at IS NULL"),
        {"u": username, "t": now},
    )
    return bool(res.rowcount)


def list_users(conn: Connection) -> list[dict[str, object]]:
    """Every user (never the hash)."""
    return [
        {"username": r[0], "role": r[1], "created_at": r[2], "disabled_at": r[3]}
        for r in conn.execute(
            text("SELECT username, role, created_at, disabled_at FROM web_users ORDER BY username")
        )
    ]


def login(
    conn: Connection, username: str, password: str, now: datetime, hours: float
) -> tuple[str, Session] | None:
    """Check the password; on success a new session (cookie secret, session), else None."""
    row = conn.execute(
        text(
            "SELECT role, password_hash, disabled_at, locked_until FROM web_users "
            "WHERE username = :u FOR UPDATE"
        ),
        {"u": username},
    ).first()
    if row is None:
        verify_password(password, hash_password("x" * MIN_PASSWORD))  # same time either way
        return None
    role, stored, disabled, locked = row
    if disabled is not None or (locked is not None and locked > now):
        return None
    if not verify_password(password, stored):
        conn.execute(
            text(
                "UPDATE web_users SET failed_logins = failed_logins + 1, "
                "locked_until = CASE WHEN failed_logins + 1 >= :m THEN CAST(:until AS timestamptz) "
                "ELSE locked_until END WHERE username = :u"
            ),
            {"u": username, "m": MAX_FAILURES, "until": now + LOCK_FOR},
        )
        return None
    conn.execute(
        text("UPDATE web_users SET failed_logins = 0, locked_until = NULL WHERE username = :u"),
        {"u": username},
    )
    secret = secrets.token_urlsafe(32)
    session = Session(username, role, secrets.token_urlsafe(24), now + timedelta(hours=hours))
    conn.execute(
        text(
            "INSERT INTO web_sessions(session_hash, username, csrf_token, created_at, expires_at) "
            "VALUES (:h, :u, :c, :t, :e)"
        ),
        {
            "h": session_digest(secret),
            "u": username,
            "c": session.csrf,
            "t": now,
            "e": session.expires_at,
        },
    )
    return secret, session


def session_for(conn: Connection, secret: str, now: datetime) -> Session | None:
    """The live session of a cookie secret (None when unknown, ended, expired or disabled)."""
    if not secret or len(secret) > 128:
        return None
    row = conn.execute(
        text(
            "SELECT s.username, u.role, s.csrf_token, s.expires_at FROM web_sessions s "
            "JOIN web_users u ON u.username = s.username "
            "WHERE s.session_hash = :h AND s.ended_at IS NULL AND s.expires_at > :t "
            "AND u.disabled_at IS NULL"
        ),
        {"h": session_digest(secret), "t": now},
    ).first()
    return None if row is None else Session(row[0], row[1], row[2], row[3])


def logout(conn: Connection, secret: str, now: datetime) -> None:
    """End the session of a cookie secret."""
    conn.execute(
        text("UPDATE web_sessions SET ended_at = :t WHERE session_hash = :h AND ended_at IS NULL"),
        {"h": session_digest(secret), "t": now},
    )
