"""Opening the gateway database: SQLite in WAL mode, checks, and migrations on start."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, text

if TYPE_CHECKING:
    from alembic.config import Config

#: The migrations; Alembic itself (~11 MB resident) is imported only when one must run.
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_REV = re.compile(r'^(down_revision|revision) = (None|"([^"]+)")$', re.M)

SQLITE_HEADER = b"SQLite format 3\x00"
_OUR_TABLES = {"meta", "outbox", "products", "lots"}


class DatabaseError(Exception):
    """The database file cannot be used; the message names the file and what to do."""


class DatabaseBusy(DatabaseError):
    """SQLite refused for now ("database is locked"): another program holds the file."""


def _is_busy(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def _busy(path: Path | None, exc: sqlite3.Error) -> DatabaseBusy:
    where = f"{path}: " if path is not None else ""
    return DatabaseBusy(f"{where}{exc}: another program holds it; try again when it is done")


def _alembic_config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def known_revisions() -> dict[str, str | None]:
    """revision -> down_revision of every migration this traceway ships (read as text)."""
    out: dict[str, str | None] = {}
    for f in sorted((MIGRATIONS / "versions").glob("*.py")):
        found = {m.group(1): m.group(3) for m in _REV.finditer(f.read_text(encoding="utf-8"))}
        rev = found.get("revision")
        if rev:
            out[rev] = found.get("down_revision")
    return out


def head_revision() -> str:
    """The newest schema revision this version of traceway knows."""
    revs = known_revisions()
    heads = set(revs) - {d for d in revs.values() if d}
    assert len(heads) == 1, f"migrations must form one line, heads: {sorted(heads)}"
    return heads.pop()


def create_sqlite_engine(path: Path, synchronous: str = "FULL") -> Engine:
    """An engine whose connections use WAL, the given synchronous level and BEGIN IMMEDIATE."""
    engine = create_engine(f"sqlite+pysqlite:///{path}", pool_pre_ping=False)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _rec: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout=10000")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def check_file(path: Path) -> None:
    """Refuse a file that is not an SQLite database, without touching it."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with path.open("rb") as f:
        header = f.read(16)
    if header != SQLITE_HEADER:
        raise DatabaseError(
            f"{path}: not an SQLite database (corrupt or a foreign file). traceway will not "
            "touch it: move it aside (or restore a backup) and start again."
        )
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            result = con.execute("PRAGMA quick_check").fetchone()
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        if _is_busy(exc):
            raise _busy(path, exc) from exc
        raise DatabaseError(
            f"{path}: the SQLite database is unreadable ({exc}). traceway will not touch it: "
            "move it aside or restore a backup."
        ) from exc
    if result is None or result[0] != "ok":
        raise DatabaseError(
            f"{path}: the SQLite database is corrupt (quick_check: {result[0] if result else '?'}). "
            "traceway will not touch it: move it aside or restore a backup."
        )


def _read_only_facts(path: Path) -> tuple[set[str], str | None]:
    """Table names and schema revision, read without changing a byte of the file."""
    if not path.exists() or path.stat().st_size == 0:
        return set(), None
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        rev = None
        if "alembic_version" in tables:
            row = con.execute("SELECT version_num FROM alembic_version").fetchone()
            rev = str(row[0]) if row else None
    finally:
        con.close()
    return tables, rev


def check_schema(path: Path) -> None:
    """Refuse a foreign database or one written by a newer traceway (read-only check)."""
    head = head_revision()
    tables, current = _read_only_facts(path)
    if current is None and tables - {"alembic_version"}:
        if not tables >= _OUR_TABLES:
            raise DatabaseError(
                f"{path}: this SQLite database belongs to something else (tables: "
                f"{', '.join(sorted(tables)[:8])}). traceway will not touch it: point "
                "storage.path at a new file."
            )
        raise DatabaseError(f"{path}: database has traceway tables but no schema revision.")
    if current is not None and current not in known_revisions():
        raise DatabaseError(
            f"{path}: the database was written by a newer traceway (schema revision "
            f"{current}, this version knows up to {head}). Downgrades are refused: install "
            "the newer traceway again or restore a backup taken before the upgrade."
        )


def migrate(engine: Engine) -> str:
    """Bring the schema to head (Alembic, in one transaction)."""
    head = head_revision()
    with engine.connect() as conn:
        has_table = conn.execute(
            text("SELECT 1 FROM sqlite_master WHERE type='table' AND name='alembic_version'")
        ).first()
        current = (
            conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            if has_table
            else None
        )
    if current != head:
        from alembic import command

        cfg = _alembic_config()
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    return head


def open_database(path: Path, synchronous: str = "FULL") -> Engine:
    """Check, create if missing, and migrate the database at ``path``; return its engine."""
    path.parent.mkdir(parents=True, exist_ok=True)
    check_file(path)
    check_schema(path)
    engine = create_sqlite_engine(path, synchronous)
    try:
        migrate(engine)
    except DatabaseError:
        engine.dispose()
        raise
    return engine


def explain_database_error(exc: BaseException, path: Path | None) -> DatabaseError | None:
    """One-line ``DatabaseError`` for an SQLite error raised while using the database at ``path``.

    Corrupt, foreign and too-new files get the same message as at start (``check_file``,
    ``check_schema``); a locked database is a ``DatabaseBusy``; anything else SQLite
    refused ("no such table") is named with the file. None when ``exc`` is not such an
    error (a bug keeps its traceback).
    """
    import sqlalchemy.exc

    orig: BaseException = exc
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.orig is not None:
        orig = exc.orig
    # OperationalError (locked, no such table, I/O error) and the plain DatabaseError
    # ("file is not a database", "database disk image is malformed") come from the file;
    # IntegrityError, ProgrammingError & co. come from our code.
    if not (isinstance(orig, sqlite3.OperationalError) or type(orig) is sqlite3.DatabaseError):
        return None
    if _is_busy(orig):
        return _busy(path, orig)
    if path is not None:
        try:
            check_file(path)
            check_schema(path)
        except DatabaseError as known:
            return known
        except sqlite3.Error:
            pass
    where = f"{path}: " if path is not None else ""
    return DatabaseError(f"{where}SQLite refused the command: {orig}")
