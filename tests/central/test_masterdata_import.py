"""Serials and despatch advices as central master data: CSV import (all or nothing,
``file:line:`` errors, upsert) by CLI and REST, audited."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from central.api.app import create_app
from central.api.tokens import DbTokenStore, new_token
from central.cli import main
from central.masterdata.catalog import parse_despatch_advices, parse_serials
from central.masterdata.importer import ImportProblems
from gs1.keys import check_digit

PUMP = "09506000134369"  # serial-tracked
PARA = "09506000134352"  # lot-tracked
BOX = "09506000134383"  # untracked


def sscc(n: int) -> str:
    body = f"34012345{n:09d}"
    return body + str(check_digit(body))


SSCC1, SSCC2 = sscc(1), sscc(2)
PRODUCTS = (
    "gtin,tracking,description,expiry_warning_days\n"
    f"{PUMP},serial,Pump,10\n{PARA},lot,Paracetamol,45\n{BOX},none,Box,30\n"
)
SERIALS = (
    f"gtin,serial,lot,state\n{PUMP},SN1,PL1,expected\n{PUMP},SN2,PL1,\n{PUMP},SN3,,destroyed\n"
)
ADVICES = (
    "sscc,desadv,gtin,lot,serial,quantity\n"
    f"{SSCC1},DA-1,{PUMP},PL1,SN1,1\n"
    f"{SSCC1},DA-1,{PARA},LOTA,,12\n"
    f"{SSCC1},DA-1,{BOX},,,3\n"
    f"{SSCC2},DA-1,{PARA},LOTB,,5\n"
)


def test_parse_serials_names_each_bad_row() -> None:
    good = parse_serials(SERIALS)
    assert [(s.serial, s.lot, s.state) for s in good] == [
        ("SN1", "PL1", "expected"),
        ("SN2", "PL1", "expected"),  # an empty state: expected
        ("SN3", None, "destroyed"),
    ]
    bad = (
        "gtin,serial,lot,state,location\n"
        f"{PUMP},SN1,,,D-01\n"  # location accepted, ignored
        f"{PUMP[:-1]}8,SN2,,,\n"
        f"{PUMP},SN 3,,,\n"
        f"{PUMP},SN4,,in_stock,\n"
        f"{PUMP},SN5,,lost,\n"
        f"{PUMP},SN1,,,\n"
        f"{PUMP},SN6\n"
    )
    with pytest.raises(ImportProblems) as exc:
        parse_serials(bad, "s.csv")
    problems = exc.value.problems
    assert [p.split(":")[1] for p in problems] == ["3", "4", "5", "6", "7", "8"]
    assert "check digit" in problems[0]
    assert "serial 'SN 3' must be 1 to 20 characters of GS1 set 82" in problems[1]
    assert "state in_stock is a site's custody" in problems[2]
    assert "state 'lost' must be one of" in problems[3]
    assert problems[4] == f"s.csv:7: serial SN1 of GTIN {PUMP} repeats line 2"
    assert problems[5] == "s.csv:8: 2 values, the header has 5"
    with pytest.raises(ImportProblems, match=r"s.csv:1: missing column\(s\) serial"):
        parse_serials("gtin,lot\n", "s.csv")


def test_parse_despatch_advices_groups_lines_by_sscc_and_refuses_ambiguity() -> None:
    advices = parse_despatch_advices(ADVICES)
    assert [(a.sscc, a.desadv_id, a.ship_to, len(a.lines)) for a in advices] == [
        (SSCC1, "DA-1", None, 3),
        (SSCC2, "DA-1", None, 1),
    ]
    assert advices[0].lines[0].serial == "SN1" and advices[0].lines[2].lot is None
    bad = (
        "sscc,desadv,gtin,lot,serial,quantity,ship_to\n"
        f"{SSCC1},DA-1,{PUMP},PL1,SN1,,site-a\n"  # a serial line: empty quantity = 1
        f"{SSCC1},DA-1,{PUMP},PL1,SN1,1,site-a\n"  # the same serial twice
        f"{SSCC1},DA-2,{PARA},LOTA,,5,site-a\n"  # another desadv for the same pallet
        f"{SSCC1},DA-1,{PARA},LOTA,,0,site-a\n"
        f"{SSCC1},DA-1,{PUMP},PL1,SN9,2,site-a\n"
        f"{SSCC1[:-1]}9,DA-1,{PARA},LOTA,,5,\n"
        f"{SSCC2},DA 3,{PARA},LOTA,,5,\n"
        f"{SSCC1},DA-1,{PARA},LOTA,,5,site-b\n"
        f"{SSCC1},DA-1,{BOX},,,7,site-a\n"
        f"{SSCC1},DA-1,{BOX},,,1,site-a\n"
    )
    with pytest.raises(ImportProblems) as exc:
        parse_despatch_advices(bad, "d.csv")
    p = exc.value.problems
    assert [x.split(":")[1] for x in p] == ["3", "4", "5", "6", "7", "8", "9", "11"]
    assert f"GTIN {PUMP} serial SN1 is on SSCC {SSCC1} twice (line 2)" in p[0]
    assert "has desadv DA-2 / ship_to site-a here but DA-1 / site-a on line 2" in p[1]
    assert "quantity '0' must be a whole number 1 to 1000000" in p[2]
    assert "serial SN9 has quantity 2: a serial line has quantity 1" in p[3]
    assert "must be 18 digits with a valid check digit" in p[4]
    assert "desadv 'DA 3'" in p[5]
    assert "ship_to site-b here but" in p[6]
    assert f"GTIN {BOX} untracked is on SSCC {SSCC1} twice (line 10)" in p[7]


def _count(engine: Engine, table: str) -> int:
    with engine.connect() as c:
        return int(c.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


@pytest.fixture
def env(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Engine:
    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    return engine


def test_cli_import_is_all_or_nothing_and_upserts(
    env: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p, s, d = tmp_path / "p.csv", tmp_path / "s.csv", tmp_path / "d.csv"
    p.write_text(PRODUCTS)
    s.write_text(SERIALS + f"{PUMP},SN4,PL1,shipped\n")
    d.write_text(ADVICES + f"{SSCC2},DA-1,{PARA},LOTB,,x\n")
    args = ["import", "--products", str(p), "--serials", str(s), "--despatch-advices", str(d)]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert f"{s}:5: state shipped is a site's custody" in err  # every file's problems
    assert f"{d}:6: quantity 'x' must be a whole number" in err
    assert "nothing imported (2 problem(s))" in err
    assert [_count(env, t) for t in ("products", "serials", "despatch_advices")] == [0, 0, 0]

    # a serial of an unknown product, a lot-tracked GTIN as serial: refused, nothing written
    s.write_text(f"gtin,serial\n{PARA},X1\n")
    assert main(["import", "--serials", str(s)]) == 1
    assert f"{s}: unknown product(s) {PARA}" in capsys.readouterr().err
    s.write_text(SERIALS)
    d.write_text(ADVICES.replace("quantity\n", "quantity,ship_to\n").replace(",12\n", ",12,\n"))
    d.write_text(
        f"sscc,desadv,gtin,lot,serial,quantity,ship_to\n{SSCC1},DA-1,{PARA},LOTA,,12,nowhere\n"
    )
    assert main(args) == 1
    assert "ship_to nowhere is not a known site" in capsys.readouterr().err
    assert _count(env, "products") == 0  # the products of the same import are not written

    d.write_text(ADVICES)
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.strip() == (
        "imported 3 product(s), 0 lot(s), 3 serial(s), 2 despatch advice(s)"
    )  # no gateway known: nothing to send yet
    assert [_count(env, t) for t in ("serials", "despatch_advices", "despatch_advice_lines")] == [
        3,
        2,
        4,
    ]
    # upsert: a pallet's advice is replaced as a whole; a serial row without a lot keeps it
    s.write_text(f"gtin,serial,lot,state\n{PUMP},SN1,,destroyed\n")
    d.write_text(f"sscc,desadv,gtin,quantity\n{SSCC1},DA-9,{BOX},4\n")
    assert main(["import", "--serials", str(s), "--despatch-advices", str(d)]) == 0
    with env.connect() as c:
        assert c.execute(text("SELECT lot, state FROM serials WHERE serial = 'SN1'")).one() == (
            "PL1",
            "destroyed",
        )
        lines = c.execute(
            text(
                "SELECT d.desadv_id, l.gtin, l.quantity FROM despatch_advices d "
                "JOIN despatch_advice_lines l USING (sscc) WHERE sscc = :s"
            ),
            {"s": SSCC1},
        ).all()
        assert [tuple(x) for x in lines] == [("DA-9", BOX, 4)]
        audit = c.execute(text("SELECT action, target FROM audit_log ORDER BY id")).all()
    assert [a[0] for a in audit] == ["import_masterdata", "import_masterdata"]
    assert audit[1][1] == {"serials": 1, "despatch_advices": 1}


def test_ship_to_is_a_site_id_or_its_gln(env: Engine, tmp_path: Path) -> None:
    sites, p, d = tmp_path / "sites.csv", tmp_path / "p.csv", tmp_path / "d.csv"
    sites.write_text("site,name,gln\nhamburg-1,Hamburg DC,4012345000009\n")
    p.write_text(PRODUCTS)
    d.write_text(
        "sscc,desadv,gtin,lot,serial,quantity,ship_to\n"
        f"{SSCC1},DA-1,{PARA},LOTA,,12,4012345000009\n"
        f"{SSCC2},DA-2,{PARA},LOTA,,12,hamburg-1\n"
    )
    assert main(["import", "--sites", str(sites), "--products", str(p)]) == 0
    assert main(["import", "--despatch-advices", str(d)]) == 0
    with env.connect() as c:
        rows = c.execute(text("SELECT sscc, ship_to FROM despatch_advices ORDER BY 1")).all()
    assert [tuple(r) for r in rows] == [(SSCC1, "hamburg-1"), (SSCC2, "hamburg-1")]


Api = tuple[TestClient, dict[str, dict[str, str]]]


@pytest.fixture
def api(engine: Engine) -> Iterator[Api]:
    store = DbTokenStore(engine)
    headers = {}
    for role in ("viewer", "recall-manager", "admin"):
        token, row = new_token(f"t-{role}", role)
        store.add(row)
        headers[role] = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(engine, store)) as client:
        yield client, headers


def _post(client: TestClient, path: str, body: str, headers: dict[str, str]) -> Any:
    return client.post(path, content=body.encode(), headers={**headers, "Content-Type": "text/csv"})


def test_rest_import_needs_admin_is_audited_and_names_bad_rows(api: Api, engine: Engine) -> None:
    client, h = api
    paths = set(client.get("/openapi.json").json()["paths"])
    assert {
        "/masterdata/products",
        "/masterdata/lots",
        "/masterdata/serials",
        "/masterdata/despatch-advices",
    } <= paths
    assert _post(client, "/masterdata/products", PRODUCTS, {}).status_code == 401
    for who in ("viewer", "recall-manager"):
        assert _post(client, "/masterdata/products", PRODUCTS, h[who]).status_code == 403
    r = _post(client, "/masterdata/serials", SERIALS, h["admin"])
    assert r.status_code == 422 and r.json()["detail"] == [
        f"serials.csv: unknown product(s) {PUMP}"
    ]
    r = _post(client, "/masterdata/products", PRODUCTS, h["admin"])
    assert r.status_code == 200, r.text
    assert r.json() == {
        "imported": 3,
        "gateways": {"mode": "none", "records": 3, "sites": {}},
    }
    r = _post(client, "/masterdata/lots", f"gtin,lot,expiry\n{PARA},LOTA,2027-13-01\n", h["admin"])
    assert r.status_code == 422
    assert r.json()["detail"] == ["lots.csv:2: expiry '2027-13-01' must be YYYY-MM-DD"]
    r = _post(client, "/masterdata/lots", f"gtin,lot,expiry\n{PARA},LOTA,2027-12-01\n", h["admin"])
    assert r.json()["imported"] == 1
    assert _post(client, "/masterdata/serials", SERIALS, h["admin"]).json()["imported"] == 3
    r = _post(client, "/masterdata/despatch-advices", ADVICES, h["admin"])
    assert r.json()["imported"] == 2
    bad = _post(client, "/masterdata/despatch-advices", "sscc;desadv\n", h["admin"])
    assert bad.status_code == 422 and "separated by semicolons" in bad.json()["detail"][0]
    assert (
        client.post(
            "/masterdata/serials",
            content=b"\xff\xfe",
            headers={**h["admin"], "Content-Type": "text/csv"},
        ).status_code
        == 422
    )
    with engine.connect() as c:
        audit = c.execute(text("SELECT actor, action, target FROM audit_log ORDER BY id")).all()
    assert [(a[0], a[1]) for a in audit] == [("api:t-admin", "import_masterdata")] * 4
    assert [a[2] for a in audit] == [
        {"products": 3},
        {"lots": 1},
        {"serials": 3},
        {"despatch_advices": 2},
    ]


def test_a_nul_in_any_cell_is_a_named_problem(api: Api) -> None:
    client, h = api
    _post(client, "/masterdata/products", PRODUCTS, h["admin"])
    for kind, body in [
        ("lots", f"gtin,lot\n{PARA},L\x00X\n"),
        ("lots", f"gtin,lot,tlc_source\n{PARA},L1,a\x00\n"),
        ("products", f"gtin,tracking,description\n{PARA},lot,a\x00b\n"),
        ("serials", f"gtin,serial\n{PUMP},S\x00\n"),
        ("despatch-advices", f"sscc,desadv,gtin,quantity\n{SSCC1},D\x00,{PARA},1\n"),
    ]:
        r = _post(client, f"/masterdata/{kind}", body, h["admin"])
        assert r.status_code == 422, (kind, r.text)
        assert r.json()["detail"][0].startswith(f"{kind}.csv:2: "), r.text


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    kind=st.sampled_from(["products", "lots", "serials", "despatch-advices"]),
    header=st.sampled_from(
        [
            "gtin,tracking,description",
            "gtin,lot,expiry,status",
            "gtin,serial,lot,state",
            "sscc,desadv,gtin,lot,serial,quantity,ship_to",
        ]
    ),
    cells=st.lists(
        st.one_of(
            st.text(max_size=24),
            st.sampled_from(
                [PUMP, PARA, BOX, SSCC1, "serial", "lot", "hold", "1", "0", "-1", "L\x00X", "é"]
            ),
        ),
        min_size=1,
        max_size=14,
    ),
)
def test_rest_import_never_fails_with_a_500(
    api: Api, kind: str, header: str, cells: list[str]
) -> None:
    """Any CSV body is imported (200) or refused with reasons (422), never a 500."""
    client, h = api
    _post(client, "/masterdata/products", PRODUCTS, h["admin"])
    n = header.count(",") + 1
    rows = [cells[i : i + n] for i in range(0, len(cells), n)]
    body = header + "\n" + "".join(",".join(r + [""] * (n - len(r))) + "\n" for r in rows)
    r = client.post(
        f"/masterdata/{kind}",
        content=body.encode("utf-8", "surrogatepass"),
        headers={**h["admin"], "Content-Type": "text/csv"},
    )
    assert r.status_code in (200, 422), (r.status_code, r.text, body)
