"""FSMA 204 over REST: GET /fsma204.xlsx and .csv (viewer), POST /masterdata/sites and
/masterdata/partners (admin); bad parameters are 422, never 500."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook
from sqlalchemy import Engine, text

from central.api.app import create_app
from central.api.tokens import DbTokenStore, new_token
from central.custody.projection import store_events
from central.fsma.columns import COLUMNS, CSV_COLUMNS, SHEETS, SHIPPING
from central.masterdata.importer import import_master_data
from tests.central.fsma_day import (
    LOTS_CSV,
    NOW,
    PARTNERS_CSV,
    PRODUCTS_CSV,
    SALSA,
    SITES_CSV,
    TOMATO,
    plant_day,
)

Api = tuple[TestClient, dict[str, dict[str, str]]]
RANGE = {"from": "2026-11-23", "to": "2026-11-24"}


@pytest.fixture
def api(engine: Engine, tmp_path: Path) -> Iterator[Api]:
    store = DbTokenStore(engine)
    headers = {}
    for role in ("viewer", "recall-manager", "admin"):
        token, row = new_token(f"t-{role}", role)
        store.add(row)
        headers[role] = {"Authorization": f"Bearer {token}"}
    p, lo = tmp_path / "p.csv", tmp_path / "l.csv"
    p.write_text(PRODUCTS_CSV)
    lo.write_text(LOTS_CSV)
    with engine.begin() as c:
        store_events(c, plant_day(), NOW)
        import_master_data(c, p, lo)
    app = create_app(engine, store, clock=lambda: datetime(2026, 12, 1, tzinfo=UTC))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, headers


def _post(client: TestClient, path: str, body: str, who: dict[str, str]) -> httpx.Response:
    return client.post(path, content=body.encode(), headers={**who, "Content-Type": "text/csv"})


def test_admin_imports_sites_and_partners_and_viewer_downloads(api: Api, engine: Engine) -> None:
    client, h = api
    r = client.get("/fsma204.xlsx", params=RANGE, headers=h["viewer"])
    assert r.status_code == 200
    assert int(r.headers["X-Traceway-Missing-Cells"]) > 0  # no sites or partners yet
    for who in ("viewer", "recall-manager"):
        resp = _post(client, "/masterdata/sites", SITES_CSV, h[who])
        assert resp.status_code == 403
    resp = _post(client, "/masterdata/sites", SITES_CSV, h["admin"])
    assert resp.status_code == 200 and resp.json() == {"imported": 1}
    resp = _post(client, "/masterdata/partners", PARTNERS_CSV, h["admin"])
    assert resp.json() == {"imported": 2}
    with engine.connect() as c:
        acts = c.execute(text("SELECT actor, action FROM audit_log ORDER BY id")).fetchall()
    assert [tuple(a) for a in acts] == [
        ("api:t-admin", "import_sites"),
        ("api:t-admin", "import_partners"),
    ]

    r = client.get("/fsma204.xlsx", params=RANGE, headers=h["viewer"])
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert 'filename="fsma204-2026-11-23-2026-11-24.xlsx"' in r.headers["content-disposition"]
    # only the customer's phone is missing now: one cell per shipping row
    assert r.headers["X-Traceway-Missing-Cells"] == "2"
    wb = load_workbook(io.BytesIO(r.content))
    assert wb.sheetnames == list(SHEETS)
    for name in SHEETS:
        assert [c.value for c in wb[name][1]] == list(COLUMNS[name])
    assert wb[SHIPPING].max_row == 3 and wb[SHIPPING]["J2"].value == "Corner Grocer"

    r = client.get("/fsma204.csv", params=RANGE, headers=h["viewer"])
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.text)))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [x[0] for x in rows[1:]] == ["Shipping", "Shipping", "Receiving", "Transformation"]


def test_tlc_filter_over_rest(api: Api) -> None:
    client, h = api
    # a literal '+' in a query string is a space: both spellings work
    for tlc in (f"{TOMATO}+TOM-1", f"{TOMATO} TOM-1", f"(01){TOMATO}(10)TOM-1"):
        r = client.get("/fsma204.csv", params={**RANGE, "tlc": tlc}, headers=h["viewer"])
        assert r.status_code == 200, r.text
        assert [x[0] for x in list(csv.reader(io.StringIO(r.text)))[1:]] == [
            "Receiving",
            "Transformation",
        ]
    r = client.get(
        f"/fsma204.csv?from=2026-11-23&to=2026-11-23&tlc={SALSA}+SAL-1&tlc={TOMATO}%2BTOM-1",
        headers=h["viewer"],
    )
    assert len(r.text.strip().splitlines()) == 5


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"from": "2026-11-23"},
        {"from": "2026-11-24", "to": "2026-11-23"},
        {"from": "23.11.2026", "to": "2026-11-23"},
        {"from": "2026-02-30", "to": "2026-03-01"},
        {"from": "2000-01-01", "to": "2026-01-01"},
        {**RANGE, "tlc": "123+L1"},
        {**RANGE, "tlc": f"{TOMATO[:-1]}{(int(TOMATO[-1]) + 1) % 10}+L1"},
        {**RANGE, "tlc": f"{TOMATO}+"},
        {**RANGE, "tlc": f"{TOMATO}+L\x01"},
        {**RANGE, "tlc": "x" * 10_000},
        {**RANGE, "tlc": [f"{TOMATO}+L{i}" for i in range(1001)]},
    ],
)
def test_bad_parameters_are_422(api: Api, params: dict[str, object]) -> None:
    client, h = api
    for path in ("/fsma204.xlsx", "/fsma204.csv"):
        r = client.get(path, params=params, headers=h["viewer"])  # type: ignore[arg-type]
        assert r.status_code == 422, (path, params, r.text[:200])


def test_unauthenticated_and_bad_csv(api: Api, engine: Engine) -> None:
    client, h = api
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/fsma204.xlsx", "/fsma204.csv", "/masterdata/sites", "/masterdata/partners"} <= set(
        paths
    )
    assert client.get("/fsma204.xlsx", params=RANGE).status_code == 401
    assert _post(client, "/masterdata/sites", SITES_CSV, {}).status_code == 401
    bad = "site,name,country\nplant-1,Acme,USA\nplant-2,,US\n"
    r = _post(client, "/masterdata/sites", bad, h["admin"])
    assert r.status_code == 422
    assert r.json()["detail"] == [
        "sites.csv:2: country 'USA' must be an ISO 3166-1 code like US",
        "sites.csv:3: name is required (the business name)",
    ]
    r = client.post(
        "/masterdata/partners",
        content=b"party,name\n\xff\xfe\n",
        headers={**h["admin"], "Content-Type": "text/csv"},
    )
    assert r.status_code == 422 and "UTF-8" in r.text
    with engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM sites")).scalar_one() == 0
        assert c.execute(text("SELECT count(*) FROM audit_log")).scalar_one() == 0


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    first=st.one_of(st.dates().map(str), st.text(max_size=12)),
    last=st.one_of(st.dates().map(str), st.text(max_size=12)),
    tlcs=st.lists(
        st.one_of(
            st.text(max_size=40),
            st.text("0123456789+ /,L-x", max_size=30),
            st.just(f"{TOMATO}+TOM-1"),
        ),
        max_size=3,
    ),
)
def test_fuzzed_parameters_are_answered_or_refused_never_500(
    api: Api, first: str, last: str, tlcs: list[str]
) -> None:
    client, h = api
    r = client.get(
        "/fsma204.csv", params={"from": first, "to": last, "tlc": tlcs}, headers=h["viewer"]
    )
    assert r.status_code in (200, 422), (first, last, tlcs, r.text[:200])


def test_too_many_rows_for_xlsx_is_422(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from central.fsma import render

    client, h = api
    monkeypatch.setattr(render, "MAX_SHEET_ROWS", 1)
    r = client.get("/fsma204.xlsx", params=RANGE, headers=h["viewer"])
    assert r.status_code == 422 and "ask for CSV" in r.text
    assert client.get("/fsma204.csv", params=RANGE, headers=h["viewer"]).status_code == 200
