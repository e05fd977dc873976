"""Stock, expiring lots and gateways at central, after the day at two sites."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from central.cli import main
from central.custody.projection import store_events
from central.masterdata.importer import import_master_data
from central.trace.queries import expiring, gateways, stock
from mqtt_topics.status import build_birth, build_metrics
from tests.central.trace_day import Day, run_day
from tests.scenarios.site import LOT_GTIN, PRODUCTS, PUMP, SALINE

NOW = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Day:
    return run_day(tmp_path_factory.mktemp("day"))


@pytest.fixture
def db(engine: Engine, day: Day, tmp_path: Path) -> Engine:
    (tmp_path / "products.csv").write_text(PRODUCTS)
    (tmp_path / "lots.csv").write_text(
        f"gtin,lot,expiry,status\n{LOT_GTIN},L1,2030-12-31,active\n{SALINE},N1,2027-06-30,active\n"
    )
    with engine.begin() as c:
        import_master_data(c, tmp_path / "products.csv", tmp_path / "lots.csv")
        store_events(c, day.all, NOW)
    return engine


def rows(xs: list[Any], *names: str) -> list[tuple[Any, ...]]:
    return [
        tuple(int(v) if n == "quantity" else v for n, v in ((n, getattr(x, n)) for n in names))
        for x in xs
    ]


def test_stock_per_site_and_location(db: Engine) -> None:
    with db.connect() as c:
        everything = stock(c)
        b = stock(c, site="site-b")
        pumps = stock(c, gtin=PUMP)
    cols = ("site", "location", "gtin", "lot", "quantity", "kind")
    assert rows(everything, *cols) == [
        ("site-a", "A-01", LOT_GTIN, "L1", 60, "lot"),
        ("site-a", "A-02", PUMP, "PL1", 1, "serials"),
        ("site-b", "DOCK-B", LOT_GTIN, "L1", 25, "lot"),
        ("site-b", "PROD", SALINE, "N1", 30, "lot"),
    ]
    assert rows(b, *cols) == rows(everything, *cols)[2:]
    assert rows(pumps, *cols) == [("site-a", "A-02", PUMP, "PL1", 1, "serials")]
    assert everything[0].description == "Paracetamol 500 mg"
    assert everything[0].expiry == date(2030, 12, 31)


def test_expiring_uses_each_products_warning_days(db: Engine) -> None:
    with db.connect() as c:
        soon = expiring(c, date(2027, 6, 1))  # saline warns 30 days ahead
        wide = expiring(c, date(2027, 6, 1), 10)
        past = expiring(c, date(2027, 7, 5), 0)
        far = expiring(c, date(2027, 6, 1), 4000)
    cols = ("gtin", "lot", "expiry", "days_left", "site", "location", "quantity")
    assert rows(soon, *cols) == [(SALINE, "N1", date(2027, 6, 30), 29, "site-b", "PROD", 30)]
    assert wide == []
    assert rows(past, *cols) == [(SALINE, "N1", date(2027, 6, 30), -5, "site-b", "PROD", 30)]
    assert [(x.lot, x.site) for x in far] == [("N1", "site-b"), ("L1", "site-a"), ("L1", "site-b")]


def _status(engine: Engine, gw: str, **kw: Any) -> None:
    with engine.begin() as c:
        c.execute(
            text(
                "UPDATE gateways SET online = :online, status = CAST(:status AS jsonb), "
                "metrics = CAST(:metrics AS jsonb), last_seen = :seen WHERE gateway_id = :g"
            ),
            {"g": gw, **kw},
        )


def test_gateways_state_outbox_cache_and_gaps(db: Engine, day: Day) -> None:
    t = NOW - timedelta(minutes=5)
    birth = build_birth(
        gateway_id="gw-a",
        site="site-a",
        time=t,
        boot=3,
        version="0.1.0",
        config_hash="3f2a9c1e5b7d4a60",
        cache_version=1207,
        clock_synced=True,
        started_at=t,
    )
    metrics = build_metrics(
        gateway_id="gw-a",
        site="site-a",
        time=t,
        interval_s=60,
        scans={"accept": 5},
        no_reads=0,
        outbox_depth=17,
        oldest_unsent_age_s=42.5,
        publish_latency_ms={},
        printers={},
        devices={},
    )
    _status(db, "gw-a", online=True, status=json.dumps(birth), metrics=json.dumps(metrics), seen=t)
    _status(db, "gw-b", online=False, status=None, metrics=None, seen=t)
    # gw-b's events 12 and 15 arrive; 10-11 and 13-14 are missing
    late = [
        {**day.b[0], "event_id": f"019aaf00-0000-7000-8000-0000000000{n}", "seq": n}
        for n in (12, 15)
    ]
    with db.begin() as c:
        store_events(c, late, NOW)
    with db.connect() as c:
        gws = gateways(c)
    by = {g.gateway_id: g for g in gws}
    assert [g.gateway_id for g in gws] == ["gw-a", "gw-b", "line-b"]
    a, b, line = by["gw-a"], by["gw-b"], by["line-b"]
    assert (a.state, a.outbox_depth, a.oldest_unsent_age_s, a.cache_version) == (
        "online",
        17,
        42.5,
        1207,
    )
    assert (a.seq_high, a.open_gaps, a.missing_events) == (8, 0, 0)
    assert (b.state, b.seq_high, b.open_gaps, b.missing_events) == ("offline", 15, 2, 4)
    assert (line.state, line.outbox_depth, line.cache_version) == ("unknown", None, None)


@pytest.fixture
def db_env(db: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    monkeypatch.setenv("DATABASE_URL", db.url.render_as_string(hide_password=False))
    yield db


def test_cli_stock_expiring_gateways(db_env: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stock", "--site", "site-b"]) == 0
    out = capsys.readouterr().out
    assert "DOCK-B" in out and "Saline 0.9%" in out and "A-01" not in out
    assert main(["stock", "--json", "--gtin", PUMP]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [(r["location"], r["quantity"], r["kind"]) for r in doc] == [("A-02", 1, "serials")]
    assert main(["expiring", "--today", "2027-06-01", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [(r["lot"], r["days_left"], r["quantity"]) for r in doc] == [("N1", 29, 30)]
    assert main(["expiring", "--today", "2027-06-01", "--days", "10"]) == 0
    assert "expiring within 10 days of 2027-06-01" in capsys.readouterr().out
    assert main(["gateways", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [g["gateway_id"] for g in doc] == ["gw-a", "gw-b", "line-b"]
    assert main(["gateways"]) == 0
    assert "unknown" in capsys.readouterr().out
    assert main(["stock", "--gtin", "123"]) == 2
