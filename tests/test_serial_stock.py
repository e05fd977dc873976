"""``serial_stock`` (in-stock serials per lot and location, kept by triggers) always
equals counting the serials, whatever writes them: property test over random writes."""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.store.db import open_database

GTINS = ("09506000134369", "09506000134376")
LOTS = (None, "L1", "L2", "L3")
STATES = ("expected", "in_stock", "picked", "shipped", "on_hold")
PLACES = ("", "A", "B")
SERIALS = tuple(f"S{i}" for i in range(6))

_write = st.one_of(
    st.tuples(
        st.just("upsert"),  # as a scan (put_serial) or an import: insert, or update
        st.sampled_from(GTINS),
        st.sampled_from(SERIALS),
        st.sampled_from(LOTS),
        st.sampled_from(STATES),
        st.sampled_from(PLACES),
        st.integers(0, 100),
    ),
    st.tuples(st.just("delete"), st.sampled_from(GTINS), st.sampled_from(SERIALS)),
    st.tuples(  # a hold or a recall from the central side: state only
        st.just("state"), st.sampled_from(GTINS), st.sampled_from(SERIALS), st.sampled_from(STATES)
    ),
    st.tuples(st.just("relot"), st.sampled_from(GTINS), st.sampled_from(LOTS)),  # many at once
)


def _counted(con: sqlite3.Connection) -> dict[tuple[str, str, str], int]:
    rows = con.execute(
        "SELECT gtin, lot, location, COUNT(*) FROM serials WHERE state = 'in_stock' "
        "AND lot IS NOT NULL GROUP BY gtin, lot, location"
    ).fetchall()
    return {(g, lot, loc): n for g, lot, loc, n in rows}


def _kept(con: sqlite3.Connection) -> dict[tuple[str, str, str], int]:
    rows = con.execute("SELECT gtin, lot, location, quantity FROM serial_stock").fetchall()
    return {(g, lot, loc): n for g, lot, loc, n in rows}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated database, copied for each example (migrating each time is slow)."""
    path = tmp_path_factory.mktemp("serial-stock") / "template.db"
    open_database(path).dispose()
    return path


@settings(max_examples=150, deadline=None)
@given(writes=st.lists(_write, max_size=40))
def test_serial_stock_equals_the_count_of_in_stock_serials(
    template: Path, writes: list[tuple[object, ...]]
) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "x.db"
        shutil.copyfile(template, path)
        con = sqlite3.connect(path, isolation_level=None)
        try:
            for w in writes:
                if w[0] == "upsert":
                    _, g, s, lot, state, place, t = w
                    con.execute(
                        "INSERT INTO serials(gtin, serial, lot, state, location, updated_at) "
                        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(gtin, serial) DO UPDATE SET "
                        "lot = excluded.lot, state = excluded.state, "
                        "location = excluded.location, updated_at = excluded.updated_at",
                        (g, s, lot, state, place, t),
                    )
                elif w[0] == "delete":
                    con.execute("DELETE FROM serials WHERE gtin = ? AND serial = ?", w[1:])
                elif w[0] == "state":
                    con.execute(
                        "UPDATE serials SET state = ? WHERE gtin = ? AND serial = ?",
                        (w[3], w[1], w[2]),
                    )
                else:
                    con.execute("UPDATE serials SET lot = ? WHERE gtin = ?", (w[2], w[1]))
                assert _kept(con) == _counted(con), w
            earliest = con.execute(
                "SELECT s.received_at, (SELECT MIN(z.updated_at) FROM serials z WHERE "
                "z.gtin = s.gtin AND z.lot = s.lot AND z.location = s.location AND "
                "z.state = 'in_stock') FROM serial_stock s"
            ).fetchall()
            for kept, now_there in earliest:
                assert kept <= now_there  # the earliest arrival since the row appeared
        finally:
            con.close()
