"""The web UI's pages (server-rendered Jinja2; a little JavaScript only enhances them).

Pages live under ``/ui``. Every page needs a logged-in session (a cookie; otherwise a
redirect to the login page); every POST needs the session's CSRF token and, when the
browser sends an ``Origin``, the same origin. Roles are the API's: a viewer reads, a
recall-manager also holds, recalls, releases and reprints. Templates escape everything
they show (autoescape), and responses carry a strict Content-Security-Policy.
"""

from __future__ import annotations

import hmac
import io
import secrets
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlencode, urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from central.api.tokens import Role
from central.fsma.model import FsmaError, check_range, parse_tlcs
from central.fsma.queries import fsma_report
from central.fsma.render import CSV_TYPE, XLSX_TYPE, to_csv, to_xlsx
from central.masterdata.holds import (
    BlockError,
    NotFound,
    Unit,
    block_status,
    release_block,
    start_block,
)
from central.trace import model as trace_model
from central.trace import queries as trace_queries
from central.trace.model import KeyError_, UnitKey, unit_key
from central.web import auth
from central.web import queries as wq
from central.web.commands import GatewayCommander
from central.web.search import parse_query

HERE = Path(__file__).resolve().parent
COOKIE = "tw_session"
LOGIN_COOKIE = "tw_login_csrf"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


class LoginRequired(Exception):
    """No live session: the page redirects to the login form."""


class Forbidden(Exception):
    """The session's role is below what the page needs, or the CSRF check failed."""


def unit_url(key: UnitKey) -> str:
    """The unit page of ``key``."""
    q = {
        k: v
        for k, v in (
            ("gtin", key.gtin),
            ("lot", key.lot),
            ("serial", key.serial),
            ("sscc", key.sscc),
        )
        if v is not None
    }
    return "/ui/unit?" + urlencode(q)


def _dt(v: datetime | None) -> str:
    if v is None:
        return "–"
    return v.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _qty(v: Decimal | float | int | None) -> str:
    if v is None:
        return "–"
    d = Decimal(str(v))
    return str(int(d)) if d == d.to_integral_value() else str(d.normalize())


def _place(t: str | None, i: str | None) -> str:
    if t is None or i is None:
        return "–"
    if t == "location":
        return i or "(at the site)"
    return f"{t} {i}"


def _safe_next(target: str | None) -> str:
    """Only a local path may be a redirect target (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/ui/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or "\\" in target:
        return "/ui/"
    return target


def _unit_from(params: dict[str, str]) -> UnitKey:
    return unit_key(
        gtin=params.get("gtin") or None,
        lot=params.get("lot") or None,
        serial=params.get("serial") or None,
        sscc=params.get("sscc") or None,
    )


def mount_web(
    app: FastAPI,
    engine: Engine,
    *,
    commander: GatewayCommander | None = None,
    on_change: Callable[[], object] | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    session_hours: float = 12.0,
    secure_cookie: bool = False,
) -> None:
    """Add the web UI (pages under ``/ui``, static files under ``/ui/static``) to ``app``."""
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(dt=_dt, qty=_qty)
    env.globals.update(unit_url=unit_url, place=_place)
    app.mount("/ui/static", StaticFiles(directory=HERE / "static"), name="ui-static")

    def page(name: str, request: Request, status: int = 200, **ctx: Any) -> Response:
        html = env.get_template(name).render(request=request, **ctx)
        return _secure(HTMLResponse(html, status_code=status))

    def _secure(resp: Response) -> Response:
        resp.headers["Content-Security-Policy"] = CSP
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "same-origin"
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["Cache-Control"] = "no-store"
        return resp

    def session_of(request: Request) -> auth.Session | None:
        secret = request.cookies.get(COOKIE, "")
        if not secret:
            return None
        with engine.connect() as c:
            return auth.session_for(c, secret, clock())

    def need(request: Request, role: Role = "viewer") -> auth.Session:
        s = session_of(request)
        if s is None:
            raise LoginRequired()
        if not s.may(role):
            raise Forbidden(f"this needs the role {role}; you are {s.role}")
        return s

    def same_origin(request: Request) -> bool:
        origin = request.headers.get("origin")
        if origin is None or origin == "null":
            return origin is None
        host = request.headers.get("host", "")
        return urlsplit(origin).netloc == host

    async def read_form(request: Request) -> dict[str, str]:
        """The POSTed form's text fields (checked by :func:`check_form`)."""
        form = await request.form()
        return {k: v for k, v in form.items() if isinstance(v, str)}

    def posted(handler: Callable[[Request, dict[str, str]], Response]) -> Any:
        """An async endpoint that reads the form, then runs ``handler`` off the event loop
        (database work, password hashing and waiting for a gateway's reply block)."""

        async def endpoint(request: Request) -> Response:
            data = await read_form(request)
            return await run_in_threadpool(handler, request, data)

        endpoint.__name__ = handler.__name__
        return endpoint

    def check_form(request: Request, s: auth.Session | None, data: dict[str, str]) -> None:
        """Refuse a form from another origin or without this session's CSRF token."""
        if not same_origin(request):
            raise Forbidden("the request came from another site")
        token = data.get("csrf", "")
        expected = s.csrf if s is not None else request.cookies.get(LOGIN_COOKIE, "")
        if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
            raise Forbidden("the form expired or did not come from this site; reload the page")

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, _exc: LoginRequired) -> Response:
        if request.method == "GET":
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return _secure(RedirectResponse("/ui/login?next=" + quote(target), status_code=303))
        return page("error.html", request, 401, session=None, message="Please log in again.")

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> Response:
        s = await run_in_threadpool(session_of, request)
        return page("error.html", request, 403, session=s, message=str(exc))

    # -- login ------------------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    def root() -> Response:
        return RedirectResponse("/ui/", status_code=303)

    def login_page(request: Request, target: str, error: str | None, status: int = 200) -> Response:
        """The login form with a fresh pre-session CSRF token (cookie + hidden field)."""
        token = secrets.token_urlsafe(24)
        resp = page(
            "login.html", request, status, session=None, csrf=token, next=target, error=error
        )
        resp.set_cookie(
            LOGIN_COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=secure_cookie,
            path="/ui/login",
        )
        return resp

    @app.get("/ui/login", include_in_schema=False)
    def login_form(request: Request, next: str = "/ui/") -> Response:
        return login_page(request, _safe_next(next), None)

    def login_post(request: Request, data: dict[str, str]) -> Response:
        check_form(request, None, data)
        target = _safe_next(data.get("next"))
        with engine.begin() as c:
            got = auth.login(
                c, data.get("username", ""), data.get("password", ""), clock(), session_hours
            )
        if got is None:
            why = "Wrong user name or password (or the user is locked for a while)."
            return login_page(request, target, why, 401)
        secret, _session = got
        ok = RedirectResponse(target, status_code=303)
        ok.set_cookie(
            COOKIE,
            secret,
            httponly=True,
            samesite="lax",
            secure=secure_cookie,
            max_age=int(session_hours * 3600),
            path="/",
        )
        ok.delete_cookie(LOGIN_COOKIE, path="/ui/login")
        return _secure(ok)

    app.post("/ui/login", include_in_schema=False)(posted(login_post))

    def logout(request: Request, data: dict[str, str]) -> Response:
        s = session_of(request)
        if s is not None:
            check_form(request, s, data)
            with engine.begin() as c:
                auth.logout(c, request.cookies.get(COOKIE, ""), clock())
        resp = RedirectResponse("/ui/login", status_code=303)
        resp.delete_cookie(COOKIE, path="/")
        return _secure(resp)

    app.post("/ui/logout", include_in_schema=False)(posted(logout))

    # -- home and search -------------------------------------------------------------------

    @app.get("/ui/", include_in_schema=False)
    def home(request: Request) -> Response:
        s = need(request)
        with engine.connect() as c:
            active = wq.blocks(c, active_only=True, limit=20)
            fleet = trace_queries.gateways(c)
        return page("home.html", request, session=s, active=active, fleet=fleet, q="")

    @app.get("/ui/search", include_in_schema=False)
    def search(request: Request, q: str = "") -> Response:
        s = need(request)
        parsed = parse_query(q)
        units = list(parsed.units)
        if parsed.lookups:
            with engine.connect() as c:
                units += [u for u in wq.resolve(c, parsed.lookups) if u not in units]
        if len(units) == 1 and not parsed.errors:
            return RedirectResponse(unit_url(units[0]), status_code=303)
        return page("search.html", request, session=s, q=q, parsed=parsed, units=units)

    # -- the unit page ---------------------------------------------------------------------

    def _key_or_400(request: Request) -> UnitKey:
        try:
            return _unit_from(dict(request.query_params))
        except KeyError_ as exc:
            raise _BadRequest(str(exc)) from None

    class _BadRequest(Exception):
        pass

    @app.exception_handler(_BadRequest)
    async def _bad(request: Request, exc: _BadRequest) -> Response:
        s = await run_in_threadpool(session_of, request)
        return page("error.html", request, 400, session=s, message=str(exc))

    @app.exception_handler(NotFound)
    async def _nf(request: Request, exc: NotFound) -> Response:
        if not request.url.path.startswith("/ui/"):
            from fastapi.responses import JSONResponse

            return JSONResponse({"detail": str(exc)}, status_code=404)
        s = await run_in_threadpool(session_of, request)
        return page("error.html", request, 404, session=s, message=str(exc))

    @app.get("/ui/unit", include_in_schema=False)
    def unit_page(request: Request, before_t: str = "", before_id: int = 0) -> Response:
        s = need(request)
        key = _key_or_400(request)
        before = None
        if before_t:
            try:
                before = (datetime.fromisoformat(before_t), before_id)
            except ValueError:
                raise _BadRequest("bad page marker") from None
        with engine.connect() as c:
            info = wq.summary(c, key)
            rows = wq.timeline(c, key, before=before, limit=wq.PAGE + 1)
        more = len(rows) > wq.PAGE
        rows = rows[: wq.PAGE]
        older = None
        if more:
            last = rows[-1]
            older = (
                unit_url(key)
                + "&"
                + urlencode({"before_t": last.event_time.isoformat(), "before_id": last.id})
            )
        return page(
            "unit.html",
            request,
            session=s,
            key=key,
            info=info,
            rows=rows,
            older=older,
            notice=None,
            can_reprint=commander is not None and s.may("recall-manager"),
        )

    @app.get("/ui/tree", include_in_schema=False)
    def tree(request: Request, dir: str = "up") -> Response:
        s = need(request)
        key = _key_or_400(request)
        if dir not in ("up", "down"):
            raise _BadRequest("dir is up or down")
        with engine.connect() as c:
            found, more = wq.neighbours(c, key, dir)  # type: ignore[arg-type]
        return page("tree.html", request, session=s, found=found, more=more, dir=dir, key=key)

    def reprint(request: Request, data: dict[str, str]) -> Response:
        s = need(request, "recall-manager")
        check_form(request, s, data)
        key = _key_or_400(request)
        event_id = data.get("event_id", "")
        notice: str
        with engine.connect() as c:
            where = wq.gateway_of_event(c, event_id) if event_id else None
            info = wq.summary(c, key)
            rows = wq.timeline(c, key, limit=wq.PAGE)
        if commander is None:
            notice = "Reprinting needs the broker: this server runs without one (--no-push)."
        elif where is None:
            notice = "No such event."
        else:
            rid, reply = commander.send(where[0], where[1], "reprint", {"event_id": event_id})
            if reply is None:
                notice = f"Sent to {where[1]} (request {rid}); no reply yet — it prints when the gateway gets it."
            elif reply.get("ok"):
                notice = f"{where[1]} queued the reprint of the label of event {event_id}."
            else:
                err = reply.get("error") or {}
                notice = f"{where[1]} refused: {err.get('message') or err.get('code') or reply}"
        return page(
            "unit.html",
            request,
            session=s,
            key=key,
            info=info,
            rows=rows,
            older=None,
            notice=notice,
            can_reprint=True,
        )

    app.post("/ui/reprint", include_in_schema=False)(posted(reprint))

    # -- recall desk -----------------------------------------------------------------------

    @app.get("/ui/recalls", include_in_schema=False)
    def recall_desk(
        request: Request, gtin: str = "", lot: str = "", serial: str = "", sscc: str = ""
    ) -> Response:
        s = need(request)
        with engine.connect() as c:
            rows = wq.blocks(c)
        prefill = {"gtin": gtin, "lot": lot, "serial": serial, "sscc": sscc}
        return page("recalls.html", request, session=s, blocks=rows, prefill=prefill, error=None)

    def recall_start(request: Request, data: dict[str, str]) -> Response:
        s = need(request, "recall-manager")
        check_form(request, s, data)
        kind: Literal["recall", "hold"] = "hold" if data.get("kind") == "hold" else "recall"
        try:
            unit = Unit.parse(
                (data.get("gtin") or "").strip(),
                (data.get("lot") or "").strip(),
                (data.get("serial") or "").strip(),
                (data.get("sscc") or "").strip(),
            )
            with engine.begin() as c:
                res = start_block(
                    c,
                    kind,
                    unit,
                    reason=data.get("reason", ""),
                    who=f"web:{s.username}",
                    now=clock(),
                )  # type: ignore[arg-type]
        except BlockError as exc:
            with engine.connect() as c:
                rows = wq.blocks(c)
            prefill = {k: data.get(k, "") for k in ("gtin", "lot", "serial", "sscc", "reason")}
            return page(
                "recalls.html",
                request,
                422,
                session=s,
                blocks=rows,
                prefill=prefill,
                error=str(exc),
            )
        if on_change is not None:
            on_change()
        return RedirectResponse(f"/ui/recalls/{res.block_id}", status_code=303)

    app.post("/ui/recalls", include_in_schema=False)(posted(recall_start))

    def _recall_of(c: Any, st: dict[str, Any]) -> trace_model.Recall | None:
        u = st["unit"]
        if "lot" in u:
            return trace_queries.recall(c, lot=unit_key(gtin=u["gtin"], lot=u["lot"]))
        if "serial" in u:
            return trace_queries.recall(c, serials=[unit_key(gtin=u["gtin"], serial=u["serial"])])
        return None

    def _block_id(block_id: str) -> str:
        if not (len(block_id) <= 20 and block_id[:2] in ("R-", "H-") and block_id[2:].isdigit()):
            raise NotFound(f"no hold or recall {block_id!r}")
        return block_id

    @app.get("/ui/recalls/{block_id}", include_in_schema=False)
    def recall_page(request: Request, block_id: str) -> Response:
        s = need(request)
        with engine.connect() as c:
            st = block_status(c, _block_id(block_id))
            answer = _recall_of(c, st)
            pallet_trace = None
            if answer is None:
                pallet_trace = trace_queries.trace(c, unit_key(sscc=st["unit"]["sscc"]), "both")
        return page(
            "recall.html",
            request,
            session=s,
            st=st,
            answer=answer,
            pallet_trace=pallet_trace,
            sections=trace_model.SECTIONS,
        )

    @app.get("/ui/recalls/{block_id}/status", include_in_schema=False)
    def recall_status(request: Request, block_id: str) -> Response:
        s = need(request)
        with engine.connect() as c:
            st = block_status(c, _block_id(block_id))
        return page("push_status.html", request, session=s, st=st)

    @app.get("/ui/recalls/{block_id}/export.csv", include_in_schema=False)
    def recall_csv(request: Request, block_id: str) -> Response:
        need(request)
        with engine.connect() as c:
            st = block_status(c, _block_id(block_id))
            answer = _recall_of(c, st)
        body = trace_model.recall_csv(answer) if answer is not None else ""
        return Response(
            body,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{block_id}.csv"'},
        )

    @app.get("/ui/recalls/{block_id}/export.xlsx", include_in_schema=False)
    def recall_xlsx(request: Request, block_id: str) -> Response:
        need(request)
        with engine.connect() as c:
            st = block_status(c, _block_id(block_id))
            answer = _recall_of(c, st)
        return Response(
            recall_workbook(st, answer),
            media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            headers={"Content-Disposition": f'attachment; filename="{block_id}.xlsx"'},
        )

    def recall_release(request: Request, data: dict[str, str]) -> Response:
        block_id = str(request.path_params["block_id"])
        s = need(request, "recall-manager")
        check_form(request, s, data)
        try:
            with engine.begin() as c:
                release_block(
                    c,
                    _block_id(block_id),
                    reason=data.get("reason", ""),
                    who=f"web:{s.username}",
                    now=clock(),
                )
        except NotFound:
            raise
        except BlockError as exc:
            with engine.connect() as c:
                st = block_status(c, block_id)
                answer = _recall_of(c, st)
            return page(
                "recall.html",
                request,
                422,
                session=s,
                st=st,
                answer=answer,
                pallet_trace=None,
                sections=trace_model.SECTIONS,
                error=str(exc),
            )
        if on_change is not None:
            on_change()
        return RedirectResponse(f"/ui/recalls/{block_id}", status_code=303)

    app.post("/ui/recalls/{block_id}/release", include_in_schema=False)(posted(recall_release))

    # -- expiring stock and the fleet ------------------------------------------------------

    @app.get("/ui/expiring", include_in_schema=False)
    def expiring(request: Request, days: str = "", site: str = "") -> Response:
        s = need(request)
        n: int | None = None
        if days.strip():
            if not days.strip().isdigit() or int(days) > 3650:
                raise _BadRequest("days: a whole number from 0 to 3650")
            n = int(days)
        with engine.connect() as c:
            rows = trace_queries.expiring(c, date.today(), n, site=site or None)
            all_sites = wq.sites(c)
        return page(
            "expiring.html", request, session=s, rows=rows, days=days, site=site, sites=all_sites
        )

    @app.get("/ui/fleet", include_in_schema=False)
    def fleet(request: Request) -> Response:
        s = need(request)
        with engine.connect() as c:
            gws = trace_queries.gateways(c)
            devs = wq.devices(c)
        by_gw: dict[str, list[dict[str, Any]]] = {}
        for d in devs:
            by_gw.setdefault(d["gateway_id"], []).append(d)
        return page("fleet.html", request, session=s, gateways=gws, devices=by_gw)

    # -- FSMA 204 --------------------------------------------------------------------------

    def _fsma_request(request: Request) -> tuple[date, date, list[str]]:
        q = request.query_params
        try:
            first = date.fromisoformat(q.get("from", ""))
            last = date.fromisoformat(q.get("to", ""))
        except ValueError:
            raise _BadRequest("from and to are dates (YYYY-MM-DD)") from None
        lines = [ln.strip() for ln in q.get("tlcs", "").splitlines()]
        return first, last, [ln for ln in lines if ln and not ln.startswith("#")]

    @app.get("/ui/fsma", include_in_schema=False)
    def fsma_page(request: Request) -> Response:
        s = need(request)
        today = clock().date()
        form = {
            "from": request.query_params.get("from", (today - timedelta(days=13)).isoformat()),
            "to": request.query_params.get("to", today.isoformat()),
            "tlcs": request.query_params.get("tlcs", ""),
        }
        preview = None
        error = None
        if "from" in request.query_params:
            try:
                first, last, tlcs = _fsma_request(request)
                check_range(first, last)
                wanted = parse_tlcs(tlcs) if tlcs else None
                with engine.connect() as c:
                    preview = fsma_report(c, first, last, wanted)
            except (FsmaError, _BadRequest) as exc:
                error = str(exc)
        query = urlencode(form)
        return page(
            "fsma.html",
            request,
            200 if error is None else 422,
            session=s,
            form=form,
            preview=preview,
            error=error,
            query=query,
        )

    @app.get("/ui/fsma/export.{ext}", include_in_schema=False)
    def fsma_export(request: Request, ext: str) -> Response:
        need(request)
        if ext not in ("xlsx", "csv"):
            raise NotFound("no such export")
        first, last, tlcs = _fsma_request(request)
        try:
            check_range(first, last)
            wanted = parse_tlcs(tlcs) if tlcs else None
            with engine.connect() as c:
                report = fsma_report(c, first, last, wanted)
            body = to_xlsx(report) if ext == "xlsx" else to_csv(report).encode("utf-8")
        except FsmaError as exc:
            raise _BadRequest(str(exc)) from None
        return Response(
            body,
            media_type=XLSX_TYPE if ext == "xlsx" else CSV_TYPE,
            headers={
                "Content-Disposition": f'attachment; filename="fsma204-{first}-{last}.{ext}"',
                "X-Traceway-Missing-Cells": str(sum(report.missing.values())),
            },
        )


def recall_workbook(st: dict[str, Any], answer: trace_model.Recall | None) -> bytes:
    """The recall as an XLSX workbook: a summary sheet and one sheet per section."""
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "recall"
    for k in (
        "block_id",
        "kind",
        "reason",
        "created_by",
        "created_at",
        "released_at",
        "release_reason",
    ):
        ws.append([k, str(st.get(k) or "")])
    ws.append(["unit", ", ".join(f"{k}={v}" for k, v in st["unit"].items())])
    if answer is not None:
        cols = [c for c in trace_model.CSV_COLUMNS if c != "section"]
        for sec in trace_model.SECTIONS:
            sh = wb.create_sheet(sec + "s")
            sh.append(cols)
            for r in answer.section(sec):
                vals = []
                for name in cols:
                    v = trace_model._plain(getattr(r, name))
                    if isinstance(v, bool):
                        v = "yes" if v else ""
                    vals.append(trace_model._defuse(v) if isinstance(v, str) else v)
                sh.append(vals)
            sh.freeze_panes = "A2"
            sh.auto_filter.ref = sh.dimensions
    push = wb.create_sheet("push")
    push.append(["site", "gateway", "action", "version", "sent_at", "status", "applied_at"])
    for p in st["push"]:
        push.append(
            [
                p["site"],
                p["gateway_id"],
                p["action"],
                p["version"],
                p["sent_at"],
                p["status"],
                p["applied_at"],
            ]
        )
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
