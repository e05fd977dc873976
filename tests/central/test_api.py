"""The REST API: tokens required, roles enforced, audit rows append-only, fuzzed parameters."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from central.api.app import create_app
from central.api.tokens import DbTokenStore, FileTokenStore, authenticate, new_token
from central.custody.projection import store_events
from gs1.keys import check_digit
from mqtt_topics.examples import event

GTIN = "04012345000016"
NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
BAD_SSCC = "34012345000000000" + str((check_digit("34012345000000000") + 1) % 10)


def loc(x: str) -> Any:
    return {"type": "location", "id": x}


@pytest.fixture
def api(engine: Engine) -> Iterator[tuple[TestClient, dict[str, dict[str, str]]]]:
    store = DbTokenStore(engine)
    headers = {}
    for role in ("viewer", "recall-manager", "admin"):
        token, row = new_token(f"t-{role}", role)
        store.add(row)
        headers[role] = {"Authorization": f"Bearer {token}"}
    with engine.begin() as c:
        store_events(
            c,
            [
                event(
                    1,
                    "receive",
                    [
                        {
                            "gtin": GTIN,
                            "lot": "L1",
                            "quantity": 10,
                            "uom": "EA",
                            "from": {"type": "party", "id": "SUP"},
                            "to": loc("DOCK"),
                        }
                    ],
                    0,
                )
            ],
            NOW,
        )
    with TestClient(create_app(engine, store)) as client:
        yield client, headers


def test_every_endpoint_needs_a_valid_token(
    api: tuple[TestClient, dict[str, dict[str, str]]], engine: Engine
) -> None:
    client, h = api
    gets = ["/trace?gtin=" + GTIN + "&lot=L1", "/stock", "/expiring", "/gateways", "/audit"]
    for path in gets:
        assert client.get(path).status_code == 401, path
        assert client.get(path, headers={"Authorization": "Bearer nope"}).status_code == 401
    body = {"gtin": GTIN, "lot": "L1", "reason": "x"}
    for path in ("/holds", "/recalls"):
        r = client.post(path, json=body)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    # a right id with a wrong secret, and a revoked token
    token = h["viewer"]["Authorization"].split()[1]
    assert client.get("/stock", headers={"Authorization": f"Bearer {token}x"}).status_code == 401
    assert client.get("/stock", headers=h["viewer"]).status_code == 200
    assert DbTokenStore(engine).revoke("t-viewer")
    assert client.get("/stock", headers=h["viewer"]).status_code == 401


def test_tokens_are_hashed_at_rest(engine: Engine, tmp_path: Path) -> None:
    token, row = new_token("ops", "admin")
    DbTokenStore(engine).add(row)
    secret = token.split("_", 2)[2].encode()
    with engine.connect() as c:
        stored = c.execute(text("SELECT salt, digest, token_id, name FROM api_tokens")).one()
    assert all(secret not in bytes(v) for v in stored[:2])
    assert authenticate(DbTokenStore(engine), token) is not None
    fs = FileTokenStore(tmp_path / "tokens")
    token2, row2 = new_token("ops", "viewer")
    fs.add(row2)
    assert token2.split("_", 2)[2] not in (tmp_path / "tokens").read_text()
    assert (tmp_path / "tokens").stat().st_mode & 0o077 == 0
    who = authenticate(fs, token2)
    assert who is not None and who.role == "viewer"
    assert fs.revoke("ops") and authenticate(fs, token2) is None


def test_roles_are_enforced(api: tuple[TestClient, dict[str, dict[str, str]]]) -> None:
    client, h = api
    body = {"gtin": GTIN, "lot": "L1", "reason": "lab"}
    for path in ("/holds", "/recalls"):
        assert client.post(path, json=body, headers=h["viewer"]).status_code == 403
    assert (
        client.post(
            "/releases", json={"block_id": "R-1", "reason": "x"}, headers=h["viewer"]
        ).status_code
        == 403
    )
    r = client.post("/recalls", json=body, headers=h["recall-manager"])
    assert r.status_code == 201, r.text
    rid = r.json()["block_id"]
    assert r.json()["sites"] == {"hamburg-1": 2}  # the site that received the lot
    assert client.get(f"/recalls/{rid}", headers=h["viewer"]).status_code == 200
    assert client.get("/audit", headers=h["recall-manager"]).status_code == 403
    assert client.get("/audit", headers=h["admin"]).status_code == 200
    assert client.post("/holds", json=body, headers=h["admin"]).status_code == 201


def test_hold_recall_release_are_audited_and_the_log_is_append_only(
    api: tuple[TestClient, dict[str, dict[str, str]]], engine: Engine
) -> None:
    client, h = api
    m = h["recall-manager"]
    hold = client.post("/holds", json={"gtin": GTIN, "lot": "L1", "reason": "lab"}, headers=m)
    recall = client.post("/recalls", json={"sscc": BAD_SSCC, "reason": "glass"}, headers=m)
    assert hold.status_code == 201 and recall.status_code == 422  # wrong SSCC check digit
    recall = client.post(
        "/recalls", json={"gtin": GTIN, "serial": "S1", "reason": "glass"}, headers=m
    )
    assert recall.status_code == 201
    rel = client.post(
        "/releases", json={"block_id": hold.json()["block_id"], "reason": "lab ok"}, headers=m
    )
    assert rel.status_code == 201
    again = client.post(
        "/releases", json={"block_id": hold.json()["block_id"], "reason": "x"}, headers=m
    )
    assert again.status_code == 422  # already released
    assert (
        client.post("/releases", json={"block_id": "H-999", "reason": "x"}, headers=m).status_code
        == 404
    )
    rows = client.get("/audit", headers=h["admin"]).json()["rows"]
    got = [(r["action"], r["actor"], r["reason"]) for r in reversed(rows)]
    assert got == [
        ("hold", "api:t-recall-manager", "lab"),
        ("recall", "api:t-recall-manager", "glass"),
        ("release", "api:t-recall-manager", "lab ok"),
    ]
    assert rows[-1]["target"] == {"block_id": "H-1", "gtin": GTIN, "lot": "L1"}
    for sql in ("UPDATE audit_log SET reason = 'x'", "DELETE FROM audit_log", "TRUNCATE audit_log"):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as c:
            c.execute(text(sql))
    # the API offers no way to change or remove audit rows (or anything else)
    for route in client.app.routes:  # type: ignore[attr-defined]
        methods: set[str] = getattr(route, "methods", None) or set()
        assert not methods & {"PUT", "PATCH", "DELETE"}, route
    assert client.delete("/audit", headers=h["admin"]).status_code == 405


def test_openapi_lists_the_endpoints(api: tuple[TestClient, dict[str, dict[str, str]]]) -> None:
    client, _ = api
    paths = set(client.get("/openapi.json").json()["paths"])
    want = {"/trace", "/recall", "/stock", "/expiring", "/gateways", "/holds", "/recalls"}
    assert want | {"/releases", "/recalls/{block_id}"} <= paths


def test_read_endpoints_answer(api: tuple[TestClient, dict[str, dict[str, str]]]) -> None:
    client, h = api
    v = h["viewer"]
    stock = client.get("/stock", params={"site": "hamburg-1"}, headers=v).json()
    assert stock["rows"] == [
        {"gtin": GTIN, "lot": "L1", "site": "hamburg-1", "location": "DOCK", "quantity": 10}
    ]
    tr = client.get("/trace", params={"gtin": GTIN, "lot": "L1"}, headers=v).json()
    assert [s["movement"] for s in tr["steps"]] == ["receive"]
    rc = client.get("/recall", params={"gtin": GTIN, "lot": "L1"}, headers=v).json()
    assert rc["lots"][0]["quantity"] == 10
    gws = client.get("/gateways", headers=v).json()["rows"]
    assert [g["gateway_id"] for g in gws] == ["dock-a"]


NASTY = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "'; DROP TABLE lot_stock; --",
            "1' OR '1'='1",
            "\x00",
            "%",
            "_",
            "\\",
            "04012345000016' --",
            "9" * 400,
            "-1",
            "1e99",
        ]
    ),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    path=st.sampled_from(["/trace", "/recall", "/stock", "/expiring", "/recalls/x"]),
    params=st.dictionaries(
        st.sampled_from(["gtin", "lot", "serial", "sscc", "site", "location", "days", "limit"]),
        NASTY,
        max_size=4,
    ),
)
def test_fuzzed_query_parameters_never_break_the_api(
    api: tuple[TestClient, dict[str, dict[str, str]]],
    engine: Engine,
    path: str,
    params: dict[str, Any],
) -> None:
    client, h = api
    if path == "/recalls/x":
        path = "/recalls/" + quote(str(params.get("lot") or "R-1"), safe="")
    r = client.get(path, params=params, headers=h["viewer"])
    # an encoded "/" in the path becomes another route: 405, never a server error
    assert r.status_code in (200, 404, 405, 422), (path, params, r.status_code, r.text)
    r.json()
    with engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM lot_stock")).scalar_one() == 1
