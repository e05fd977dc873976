"""The web UI over HTTP: login and sessions, CSRF, roles, escaping, the pages' content.

The day at two sites (tests/central/trace_day.py) is the data; a real PostgreSQL holds it.
The browser test (test_web_browser.py) drives the same pages in chromium.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from central.api.app import create_app
from central.api.tokens import DbTokenStore
from central.custody.projection import store_events
from central.masterdata.importer import import_master_data
from central.web import auth
from central.web.views import mount_web
from mqtt_topics.examples import event
from tests.central.trace_day import GLN_C, Day, X, run_day
from tests.scenarios.site import LOT_GTIN, PRODUCTS, PUMP, SALINE

NOW = datetime(2026, 12, 1, tzinfo=UTC)
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Day:
    return run_day(tmp_path_factory.mktemp("day"))


def load_day(engine: Engine, day: Day, tmp: Path) -> None:
    """The day's events and master data, and one user per role."""
    (tmp / "products.csv").write_text(PRODUCTS)
    (tmp / "lots.csv").write_text(
        f"gtin,lot,expiry,status\n{LOT_GTIN},L1,2030-12-31,active\n{SALINE},N1,2026-12-20,active\n"
    )
    with engine.begin() as c:
        import_master_data(c, tmp / "products.csv", tmp / "lots.csv")
        store_events(c, day.all, NOW)
        for role in ("viewer", "recall-manager", "admin"):
            auth.add_user(c, role.split("-")[0], role, PASSWORD, NOW)


def web_app(engine: Engine) -> Any:
    app = create_app(engine, DbTokenStore(engine))
    mount_web(app, engine)
    return app


@pytest.fixture
def web(engine: Engine, day: Day, tmp_path: Path) -> Iterator[TestClient]:
    load_day(engine, day, tmp_path)
    with TestClient(web_app(engine), base_url="http://testserver") as client:
        yield client


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no CSRF field on the page"
    return m.group(1)


def log_in(client: TestClient, user: str, password: str = PASSWORD) -> Any:
    page = client.get("/ui/login")
    return client.post(
        "/ui/login",
        data={"username": user, "password": password, "csrf": csrf_of(page.text), "next": "/ui/"},
        follow_redirects=False,
    )


def test_pages_need_a_login(web: TestClient) -> None:
    for path in (
        "/ui/",
        "/ui/search?q=x",
        f"/ui/unit?gtin={LOT_GTIN}&lot=L1",
        "/ui/recalls",
        "/ui/expiring",
        "/ui/fleet",
        f"/ui/tree?gtin={LOT_GTIN}&lot=L1&dir=up",
    ):
        r = web.get(path, follow_redirects=False)
        assert r.status_code == 303, path
        assert r.headers["location"].startswith("/ui/login?next=")
    r = web.post("/ui/recalls", data={"gtin": LOT_GTIN, "lot": "L1", "reason": "x"})
    assert r.status_code == 401
    # a forged session cookie is no session
    web.cookies.set("tw_session", "forged")
    assert web.get("/ui/", follow_redirects=False).status_code == 303


def test_login_logout_and_session_at_rest(web: TestClient, engine: Engine) -> None:
    assert log_in(web, "viewer", "wrong password").status_code == 401
    r = log_in(web, "viewer")
    assert r.status_code == 303 and r.headers["location"] == "/ui/"
    cookie = r.cookies.get("tw_session") or web.cookies.get("tw_session")
    assert cookie
    set_cookie = r.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=lax" in set_cookie
    home = web.get("/ui/")
    assert home.status_code == 200 and "viewer" in home.text
    with engine.connect() as c:
        stored = c.execute(text("SELECT session_hash, csrf_token FROM web_sessions")).all()
        hashes = c.execute(text("SELECT password_hash FROM web_users")).scalars().all()
    assert all(cookie.encode() not in bytes(s[0]) for s in stored)
    assert all(h.startswith("scrypt$") and PASSWORD not in h for h in hashes)
    r = web.post("/ui/logout", data={"csrf": csrf_of(home.text)}, follow_redirects=False)
    assert r.status_code == 303
    web.cookies.set("tw_session", cookie)  # the old cookie no longer works
    assert web.get("/ui/", follow_redirects=False).status_code == 303


def test_five_wrong_passwords_lock_the_user(web: TestClient) -> None:
    for _ in range(auth.MAX_FAILURES):
        assert log_in(web, "admin", "not the password").status_code == 401
    assert log_in(web, "admin").status_code == 401  # locked, even with the right one


def test_login_redirect_stays_on_this_site(web: TestClient) -> None:
    page = web.get("/ui/login")
    for evil in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        r = web.post(
            "/ui/login",
            data={
                "username": "viewer",
                "password": PASSWORD,
                "csrf": csrf_of(page.text),
                "next": evil,
            },
            follow_redirects=False,
        )
        assert r.headers["location"] == "/ui/", evil
        page = web.get("/ui/login")


def test_csrf_and_origin_are_checked(web: TestClient, engine: Engine) -> None:
    assert log_in(web, "recall").status_code == 303
    form = {"gtin": LOT_GTIN, "lot": "L1", "reason": "lab", "kind": "recall"}
    assert web.post("/ui/recalls", data=form).status_code == 403  # no token
    assert web.post("/ui/recalls", data={**form, "csrf": "guess"}).status_code == 403
    token = csrf_of(web.get("/ui/recalls").text)
    r = web.post(
        "/ui/recalls",
        data={**form, "csrf": token},
        headers={"Origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert r.status_code == 403
    with engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM blocks")).scalar_one() == 0
    r = web.post("/ui/recalls", data={**form, "csrf": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/ui/recalls/R-1"
    with engine.connect() as c:
        who = c.execute(text("SELECT actor, action, reason FROM audit_log")).one()
    assert tuple(who) == ("web:recall", "recall", "lab")


def test_a_viewer_cannot_recall_release_or_reprint(web: TestClient, engine: Engine) -> None:
    assert log_in(web, "viewer").status_code == 303
    desk = web.get("/ui/recalls")
    assert 'action="/ui/recalls"' not in desk.text  # no start form for a viewer
    token = csrf_of(desk.text)
    r = web.post("/ui/recalls", data={"gtin": LOT_GTIN, "lot": "L1", "reason": "x", "csrf": token})
    assert r.status_code == 403 and "recall-manager" in r.text
    assert (
        web.post("/ui/recalls/R-1/release", data={"reason": "x", "csrf": token}).status_code == 403
    )
    assert web.post(f"/ui/reprint?gtin={LOT_GTIN}&lot=L1", data={"csrf": token}).status_code == 403
    with engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM blocks")).scalar_one() == 0


def test_search_takes_scans_and_typed_keys(web: TestClient) -> None:
    assert log_in(web, "viewer").status_code == 303
    lot_page = f"/ui/unit?gtin={LOT_GTIN}&lot=L1"
    for q in (
        f"]C101{LOT_GTIN}10L1",  # a scanned GS1-128 with its AIM id
        f"(01){LOT_GTIN}(10)L1",  # HRI
        f"https://id.example.com/01/{LOT_GTIN}/10/L1",  # Digital Link
        f"{LOT_GTIN} L1",  # typed
        f"01{LOT_GTIN}17301231<GS>10L1",  # keyboard wedge spelling GS
    ):
        r = web.get("/ui/search", params={"q": q}, follow_redirects=False)
        assert r.status_code == 303, (q, r.text[:300])
        assert r.headers["location"] == lot_page, q
    r = web.get("/ui/search", params={"q": X}, follow_redirects=False)
    assert r.headers["location"] == f"/ui/unit?sscc={X}"
    r = web.get("/ui/search", params={"q": "P1"}, follow_redirects=False)
    assert r.headers["location"] == f"/ui/unit?gtin={PUMP}&serial=P1"
    # a GTIN with a lot AND a serial: both offered
    r = web.get("/ui/search", params={"q": f"01{PUMP}10PL1\x1d21P1"})
    assert r.status_code == 200 and "choose one" in r.text
    assert f"serial={'P1'}" in r.text and "lot=PL1" in r.text
    bad = web.get("/ui/search", params={"q": f"01{LOT_GTIN[:-1]}9" + "10L1"})
    assert bad.status_code == 200 and "check digit" in bad.text
    assert "Nothing known" in web.get("/ui/search", params={"q": "NOSUCHLOT"}).text


def test_unit_page_shows_now_timeline_and_tree(web: TestClient) -> None:
    assert log_in(web, "viewer").status_code == 303
    page = web.get(f"/ui/unit?gtin={LOT_GTIN}&lot=L1")
    assert page.status_code == 200
    html = page.text
    assert "site-a" in html and "site-b" in html  # where it is now
    assert GLN_C in html  # who received it (shipped on pallet X or directly)
    assert "receive" in html and "ship" in html
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    up = web.get(f"/ui/tree?gtin={SALINE}&lot=N1&dir=up")
    assert "made from" in up.text and "L1" in up.text
    down = web.get(f"/ui/tree?gtin={LOT_GTIN}&lot=L1&dir=down")
    assert "made into" in down.text and "N1" in down.text and X in down.text
    pallet = web.get(f"/ui/tree?sscc={X}&dir=up")
    assert "content" in pallet.text
    assert web.get("/ui/unit?gtin=123&lot=L1").status_code == 400
    assert web.get("/ui/tree?gtin=" + LOT_GTIN + "&lot=L1&dir=sideways").status_code == 400


def test_timeline_pages_back(web: TestClient, engine: Engine) -> None:
    gtin = LOT_GTIN
    evs = [
        event(
            500 + n,
            "putaway",
            [
                {
                    "gtin": gtin,
                    "lot": "BIG",
                    "quantity": 1,
                    "uom": "EA",
                    "from": {"type": "location", "id": "A"},
                    "to": {"type": "location", "id": "B"},
                }
            ],
            n,
        )
        for n in range(130)
    ]
    with engine.begin() as c:
        store_events(c, evs, NOW)
    assert log_in(web, "viewer").status_code == 303
    first = web.get(f"/ui/unit?gtin={gtin}&lot=BIG")
    assert first.text.count('class="mv-putaway"') == 100
    older = re.search(r'href="([^"]*before_t=[^"]*)"', first.text)
    assert older
    second = web.get(older.group(1).replace("&amp;", "&"))
    assert second.text.count('class="mv-putaway"') == 30


def test_user_input_is_shown_as_text(web: TestClient, engine: Engine) -> None:
    evil = "<script>"
    with engine.begin() as c:
        store_events(
            c,
            [
                event(
                    900,
                    "receive",
                    [
                        {
                            "gtin": LOT_GTIN,
                            "lot": evil,
                            "quantity": 3,
                            "uom": "EA",
                            "from": {"type": "party", "id": "SUP"},
                            "to": {"type": "location", "id": "D1"},
                        }
                    ],
                    0,
                )
            ],
            NOW,
        )
    assert log_in(web, "recall").status_code == 303
    page = web.get("/ui/unit", params={"gtin": LOT_GTIN, "lot": evil})
    assert page.status_code == 200
    assert "<script>" not in page.text.replace(
        '<script src="/ui/static/app.js" defer></script>', ""
    )
    assert "&lt;script&gt;" in page.text
    search = web.get("/ui/search", params={"q": "<b>x</b>"})
    assert "<b>x</b>" not in search.text
    token = csrf_of(web.get("/ui/recalls").text)
    r = web.post(
        "/ui/recalls",
        data={
            "gtin": LOT_GTIN,
            "lot": evil,
            "reason": "<img src=x onerror=alert(1)>",
            "csrf": token,
        },
    )
    assert r.status_code == 200  # followed to the recall page
    assert "<img src=x" not in r.text and "&lt;img src=x onerror=alert(1)&gt;" in r.text


def test_recall_desk_shows_affected_units_and_exports(web: TestClient, engine: Engine) -> None:
    assert log_in(web, "recall").status_code == 303
    token = csrf_of(web.get("/ui/recalls").text)
    r = web.post(
        "/ui/recalls",
        data={
            "gtin": LOT_GTIN,
            "lot": "L1",
            "reason": "supplier notice",
            "kind": "recall",
            "csrf": token,
        },
    )
    assert r.status_code == 200 and "Recall R-1" in r.text
    html = r.text
    assert "Recipients" in html and GLN_C in html
    assert "N1" in html and "made of it" in html  # downstream saline
    assert X in html  # the pallet
    assert 'id="push-status"' in html and "site-a" in html and "site-b" in html
    status = web.get("/ui/recalls/R-1/status")
    assert status.status_code == 200 and "pending" in status.text
    csv_ = web.get("/ui/recalls/R-1/export.csv")
    assert csv_.headers["content-type"].startswith("text/csv") and GLN_C in csv_.text
    from openpyxl import load_workbook

    wb = load_workbook(BytesIO(web.get("/ui/recalls/R-1/export.xlsx").content))
    assert wb.sheetnames == ["recall", "serials", "lots", "pallets", "recipients", "push"]
    parties = [row[11] for row in wb["recipients"].iter_rows(min_row=2, values_only=True)]
    assert GLN_C in parties
    # release with a reason
    token = csrf_of(html)
    assert (
        web.post("/ui/recalls/R-1/release", data={"reason": "", "csrf": token}).status_code == 422
    )
    r = web.post("/ui/recalls/R-1/release", data={"reason": "false alarm", "csrf": token})
    assert r.status_code == 200 and "released" in r.text and "false alarm" in r.text
    with engine.connect() as c:
        actions = c.execute(text("SELECT action FROM audit_log ORDER BY id")).scalars().all()
    assert actions == ["recall", "release"]
    assert web.get("/ui/recalls/R-99").status_code == 404
    assert web.get("/ui/recalls/nonsense").status_code == 404


def test_expiring_and_fleet(web: TestClient) -> None:
    assert log_in(web, "viewer").status_code == 303
    exp = web.get("/ui/expiring", params={"days": "3650"})
    assert exp.status_code == 200 and "N1" in exp.text and "L1" in exp.text
    only_b = web.get("/ui/expiring", params={"days": "3650", "site": "site-a"})
    assert "N1" not in only_b.text
    assert web.get("/ui/expiring", params={"days": "-1"}).status_code == 400
    fleet = web.get("/ui/fleet")
    assert fleet.status_code == 200


def test_fsma_page_previews_and_downloads(web: TestClient) -> None:
    from openpyxl import load_workbook

    from central.fsma.columns import COLUMNS, SHEETS

    assert log_in(web, "viewer").status_code == 303
    form = web.get("/ui/fsma")
    assert form.status_code == 200 and 'name="from"' in form.text
    today = datetime.now(UTC).date().isoformat()
    q = {"from": "2026-01-01", "to": today, "tlcs": f"{LOT_GTIN}+L1\n# a comment\n"}
    preview = web.get("/ui/fsma", params=q)
    assert preview.status_code == 200 and "Download XLSX" in preview.text
    assert "Shipping" in preview.text and "MISSING" in preview.text  # no partner addresses
    xlsx = web.get("/ui/fsma/export.xlsx", params=q)
    assert xlsx.status_code == 200
    assert int(xlsx.headers["x-traceway-missing-cells"]) > 0
    wb = load_workbook(BytesIO(xlsx.content))
    assert tuple(wb.sheetnames) == SHEETS
    for sheet in SHEETS:
        header = next(wb[sheet].iter_rows(max_row=1, values_only=True))
        assert tuple(header) == COLUMNS[sheet]
        assert not wb[sheet].merged_cells.ranges
    shipped = [r for r in wb["Shipping"].iter_rows(min_row=2, values_only=True)]
    assert shipped and all(str(r[0]).startswith(LOT_GTIN) for r in shipped)
    csv_ = web.get("/ui/fsma/export.csv", params=q)
    assert csv_.text.startswith("Critical Tracking Event")
    bad = web.get("/ui/fsma", params={**q, "tlcs": "not a code"})
    assert bad.status_code == 422 and "error" in bad.text
    assert web.get("/ui/fsma/export.xlsx", params={**q, "from": "yesterday"}).status_code == 400
    assert web.get("/ui/fsma/export.pdf", params=q).status_code == 404
