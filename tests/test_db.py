"""Opening the database: migrations, and refusing foreign, corrupt or newer files untouched."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.store.db import DatabaseError, head_revision, open_database


def digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_new_database_is_migrated_to_head_in_wal(tmp_path: Path) -> None:
    engine = open_database(tmp_path / "a" / "gw.db")
    engine.dispose()
    con = sqlite3.connect(tmp_path / "a" / "gw.db")
    assert con.execute("SELECT version_num FROM alembic_version").fetchone() == (head_revision(),)
    assert con.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"products", "lots", "lot_stock", "serials", "outbox", "print_jobs", "meta"} <= tables


def test_reopen_is_idempotent(tmp_path: Path) -> None:
    open_database(tmp_path / "gw.db").dispose()
    open_database(tmp_path / "gw.db").dispose()


def test_garbage_file_refused_untouched(tmp_path: Path) -> None:
    p = tmp_path / "gw.db"
    p.write_bytes(b"this is not a database at all" * 100)
    before = digest(p)
    with pytest.raises(DatabaseError, match="not an SQLite database"):
        open_database(p)
    assert digest(p) == before


def test_foreign_sqlite_refused_untouched(tmp_path: Path) -> None:
    p = tmp_path / "gw.db"
    con = sqlite3.connect(p)
    con.execute("CREATE TABLE invoices (id INTEGER)")
    con.commit()
    con.close()
    before = digest(p)
    with pytest.raises(DatabaseError, match="belongs to something else"):
        open_database(p)
    assert digest(p) == before


def test_corrupt_sqlite_refused(tmp_path: Path) -> None:
    p = tmp_path / "gw.db"
    open_database(p).dispose()
    data = bytearray(p.read_bytes())
    data[4096:8192] = b"\xff" * 4096  # smash the second page
    p.write_bytes(bytes(data))
    before = digest(p)
    with pytest.raises(DatabaseError) as ei:
        open_database(p)
    assert str(p) in str(ei.value)
    assert digest(p) == before


def test_newer_schema_refused(tmp_path: Path) -> None:
    p = tmp_path / "gw.db"
    open_database(p).dispose()
    con = sqlite3.connect(p)
    con.execute("UPDATE alembic_version SET version_num = '9999_future'")
    con.commit()
    con.close()
    with pytest.raises(DatabaseError, match="newer traceway"):
        open_database(p)


def test_run_refuses_with_clear_message(tmp_path: Path) -> None:
    cfg = tmp_path / "gw.toml"
    cfg.write_text(
        '[gateway]\nsite="s"\nid="g"\n[storage]\npath="gw.db"\n[broker]\nenabled=false\n[stations.a]\nstep="receiving"\n'
    )
    (tmp_path / "gw.db").write_text("hello")
    r = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "run", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 3
    assert "not an SQLite database" in r.stderr
    assert (tmp_path / "gw.db").read_text() == "hello"


def test_head_read_from_the_migration_files_is_alembics() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from gateway.store.db import MIGRATIONS

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    assert head_revision() == ScriptDirectory.from_config(cfg).get_current_head()


def test_starting_on_a_current_database_does_not_load_alembic(tmp_path: Path) -> None:
    import subprocess
    import sys

    db = tmp_path / "x.db"
    open_database(db).dispose()
    code = (
        "import sys; from pathlib import Path; from gateway.store.db import open_database; "
        f"open_database(Path({str(db)!r})).dispose(); print('alembic' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


class _Alembic:
    """Steps one database through Alembic revisions (the migration tests)."""

    def __init__(self, path: Path) -> None:
        from gateway.store.db import _alembic_config, create_sqlite_engine

        self.path = path
        self.engine = create_sqlite_engine(path)
        self.cfg = _alembic_config()

    def to(self, rev: str, down: bool = False) -> None:
        from alembic import command

        with self.engine.begin() as conn:
            self.cfg.attributes["connection"] = conn
            (command.downgrade if down else command.upgrade)(self.cfg, rev)

    def indexes(self, table: str | None = None) -> dict[str, str]:
        """name → CREATE INDEX statement (of ``table``, or of every table)."""
        con = sqlite3.connect(self.path)
        rows = con.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
            "AND tbl_name = COALESCE(?, tbl_name)",
            (table,),
        ).fetchall()
        con.close()
        return {name: sql for name, sql in rows}


def test_lean_history_indexes_migrate_with_data_and_back(tmp_path: Path) -> None:
    """0007 → 0008 on a database with history rows: partial indexes, no created_at index,
    rows kept; and the downgrade restores the old indexes."""
    db = _Alembic(tmp_path / "gw.db")
    path, to = db.path, db.to

    def indexes() -> dict[str, str]:
        return db.indexes("history")

    to("0007")
    con = sqlite3.connect(path)
    con.executemany(
        "INSERT INTO history(seq, event_id, event_time, movement, biz_step, station, gtin, lot, "
        "serial, created_at) VALUES (?, ?, '', 'receive', 'receiving', 'ws', '09506000134352', "
        "?, ?, 1.0)",
        [(i, f"e{i}", "L1" if i % 2 else None, None if i % 2 else f"S{i}") for i in range(1, 101)],
    )
    con.commit()
    con.close()
    assert "ix_history_created" in indexes()
    to("head")
    after = indexes()
    assert "ix_history_created" not in after
    for name, column in (
        ("ix_history_lot", "lot"),
        ("ix_history_serial", "serial"),
        ("ix_history_sscc", "sscc"),
        ("ix_history_parent", "parent"),
    ):
        assert f"{column} IS NOT NULL" in after[name], after[name]
    con = sqlite3.connect(path)
    assert con.execute("SELECT COUNT(*) FROM history").fetchone() == (100,)
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    con.close()
    to("0007", down=True)
    back = indexes()
    assert "ix_history_created" in back and "WHERE" not in back["ix_history_lot"]
    db.engine.dispose()


def test_serial_lot_index_migrates_with_data_and_back(tmp_path: Path) -> None:
    """0008 → 0009 on a database with serials: the lot index (partial) and the SSCC hold
    index come, rows stay; the downgrade takes them away again."""
    db = _Alembic(tmp_path / "gw.db")
    path, to, indexes = db.path, db.to, db.indexes

    to("0008")
    con = sqlite3.connect(path)
    con.executemany(
        "INSERT INTO serials(gtin, serial, lot, state) VALUES ('09506000134369', ?, ?, 'in_stock')",
        [(f"S{i}", f"L{i % 3}" if i % 2 else None) for i in range(100)],
    )
    con.commit()
    con.close()
    assert "ix_serials_lot" not in indexes()
    to("head")
    after = indexes()
    assert "lot IS NOT NULL" in after["ix_serials_lot"]
    assert "sscc IS NOT NULL" in after["ix_sync_holds_sscc"]
    con = sqlite3.connect(path)
    assert con.execute("SELECT COUNT(*) FROM serials").fetchone() == (100,)
    plan = " ".join(
        str(r[3])
        for r in con.execute(
            "EXPLAIN QUERY PLAN SELECT COUNT(*) FROM serials WHERE gtin = ? AND lot = ?",
            ("09506000134369", "L1"),
        )
    )
    assert "ix_serials_lot" in plan, plan
    con.close()
    to("0008", down=True)
    assert "ix_serials_lot" not in indexes() and "ix_sync_holds_sscc" not in indexes()
    db.engine.dispose()


def test_serial_stock_is_filled_from_the_serials_and_dropped_again(tmp_path: Path) -> None:
    """0009 → 0010 on a database with serials: ``serial_stock`` starts as their count per
    lot and location (in-stock, with a lot), and its triggers keep it so; downgrade drops
    both."""
    db = _Alembic(tmp_path / "gw.db")
    db.to("0009")
    con = sqlite3.connect(db.path, isolation_level=None)
    con.executemany(
        "INSERT INTO serials(gtin, serial, lot, state, location, updated_at) "
        "VALUES ('09506000134369', ?, ?, ?, ?, ?)",
        [
            (f"S{i}", None if i % 5 == 0 else f"L{i % 2}", "in_stock" if i % 3 else "picked",
             "A" if i < 50 else "B", float(i))
            for i in range(100)
        ],
    )  # fmt: skip
    db.to("head")
    counted = con.execute(
        "SELECT gtin, lot, location, COUNT(*), MIN(updated_at) FROM serials WHERE "
        "state = 'in_stock' AND lot IS NOT NULL GROUP BY gtin, lot, location ORDER BY 1, 2, 3"
    ).fetchall()
    kept = "SELECT gtin, lot, location, quantity, received_at FROM serial_stock ORDER BY 1, 2, 3"
    assert con.execute(kept).fetchall() == counted and len(counted) == 4
    con.execute("UPDATE serials SET state = 'shipped', location = '' WHERE location = 'A'")
    assert [r[2] for r in con.execute(kept)] == ["B", "B"]
    con.close()
    db.to("0009", down=True)
    con = sqlite3.connect(db.path)
    names = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
    con.close()
    assert "serial_stock" not in names and not {n for n in names if "serial_stock" in n}
    db.engine.dispose()
