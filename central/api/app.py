"""The REST JSON API (FastAPI; OpenAPI at ``/openapi.json``).

Every endpoint needs ``Authorization: Bearer <token>`` (401 without a valid one).
Roles: ``viewer`` reads (and downloads the FSMA 204 spreadsheet); ``recall-manager`` also
holds, recalls and releases; ``admin`` also reads the audit log and imports master data
(products, lots, serials, despatch advices, sites, partners; 403 below the role). Query parameters are validated before
any SQL runs (GTIN/SSCC digits and check digit, GS1 set 82 for lots and serials, no
control characters) and every statement binds its parameters.
"""

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, Engine, text

from central import __version__
from central.api import queries
from central.api.tokens import Principal, Role, TokenStore, authenticate
from central.epcis import views as epcis_views
from central.epcis.schema import Validate, load_validator
from central.fsma.model import FsmaError, check_range, parse_tlcs
from central.fsma.queries import fsma_report
from central.fsma.render import CSV_TYPE, XLSX_TYPE, to_csv, to_xlsx
from central.masterdata.catalog import parse_despatch_advices, parse_serials
from central.masterdata.holds import (
    BlockError,
    NotFound,
    Unit,
    audit,
    block_status,
    release_block,
    start_block,
)
from central.masterdata.importer import ImportProblems, parse_lots, parse_products
from central.masterdata.parties import parse_places, store_places
from central.masterdata.publish import Parsed, store_and_publish
from central.trace import model as trace_model
from central.trace import queries as trace_queries
from gs1.keys import is_valid_gtin, is_valid_sscc

GTIN = r"^[0-9]{14}$"
SSCC = r"^[0-9]{18}$"
GS1_TEXT = r"^[!\"%-?A-Z_a-z]{1,20}$"
PLAIN = r"^[^\x00-\x1f\x7f]{1,64}$"
BLOCK_ID = r"^[HR]-[0-9]{1,18}$"
MAX_CSV_BYTES = 5_000_000


class UnitIn(BaseModel):
    """A lot (gtin + lot), a serial (gtin + serial) or a pallet (sscc), and why."""

    model_config = ConfigDict(extra="forbid")
    gtin: str | None = Field(default=None, pattern=GTIN)
    lot: str | None = Field(default=None, pattern=GS1_TEXT)
    serial: str | None = Field(default=None, pattern=GS1_TEXT)
    sscc: str | None = Field(default=None, pattern=SSCC)
    reason: str = Field(min_length=1, max_length=512)


class ReleaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    block_id: str = Field(pattern=BLOCK_ID)
    reason: str = Field(min_length=1, max_length=512)


def _check_keys(gtin: str | None, sscc: str | None) -> None:
    if gtin is not None and not is_valid_gtin(gtin):
        raise HTTPException(422, f"GTIN {gtin} has a wrong check digit")
    if sscc is not None and not is_valid_sscc(sscc):
        raise HTTPException(422, f"SSCC {sscc} has a wrong check digit")


def create_app(
    engine: Engine,
    tokens: TokenStore,
    *,
    on_change: Callable[[], object] | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    epcis_validator: Validate | str | None = "default",
) -> FastAPI:
    """The API over ``engine``; ``on_change`` runs after a hold/recall/release commits.

    ``epcis_validator`` checks captured EPCIS documents (default: the official schema
    found by :func:`central.epcis.schema.load_validator`; None: capture is refused).
    """
    app = FastAPI(
        title="traceway central",
        version=__version__,
        description="Trace, recall, stock and recall push. Bearer tokens; see README.",
    )
    bearer = HTTPBearer(auto_error=False)

    def principal(
        cred: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Principal:
        who = authenticate(tokens, cred.credentials) if cred is not None else None
        if who is None:
            raise HTTPException(
                401, "a valid bearer token is required", {"WWW-Authenticate": "Bearer"}
            )
        return who

    def need(role: Role) -> Callable[[Principal], Principal]:
        def dep(who: Annotated[Principal, Depends(principal)]) -> Principal:
            if not who.may(role):
                raise HTTPException(403, f"needs role {role} (token {who.name} is {who.role})")
            return who

        return dep

    def conn() -> Iterator[Connection]:
        with engine.connect() as c:
            yield c

    Viewer = Annotated[Principal, Depends(need("viewer"))]
    Manager = Annotated[Principal, Depends(need("recall-manager"))]
    Admin = Annotated[Principal, Depends(need("admin"))]
    Conn = Annotated[Connection, Depends(conn)]
    Limit = Annotated[int, Query(ge=1, le=5000)]

    app.include_router(
        epcis_views.router(
            engine,
            need("viewer"),
            need("recall-manager"),
            clock=clock,
            validator=load_validator() if isinstance(epcis_validator, str) else epcis_validator,
        )
    )

    @app.exception_handler(NotFound)
    async def _not_found(_r: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(BlockError)
    async def _bad(_r: Request, exc: BlockError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.get("/trace", summary="Trace a lot, serial or SSCC backward and forward")
    def get_trace(
        _w: Viewer,
        c: Conn,
        gtin: Annotated[str | None, Query(pattern=GTIN)] = None,
        lot: Annotated[str | None, Query(pattern=GS1_TEXT)] = None,
        serial: Annotated[str | None, Query(pattern=GS1_TEXT)] = None,
        sscc: Annotated[str | None, Query(pattern=SSCC)] = None,
        direction: Annotated[str, Query(pattern="^(both|backward|forward)$")] = "both",
        depth: Annotated[int, Query(ge=1, le=50)] = 20,
    ) -> dict[str, Any]:
        """Through pallets and transformations, any depth (cycles guarded)."""
        Unit.parse(gtin, lot, serial, sscc)
        key = trace_model.unit_key(gtin=gtin, lot=lot, serial=serial, sscc=sscc)
        found = trace_queries.trace(c, key, direction, depth)  # type: ignore[arg-type]
        out: dict[str, Any] = trace_model.to_json(found)
        return out

    @app.get("/recall", summary="Every affected unit, where it is now, who received it")
    def get_recall(
        _w: Viewer,
        c: Conn,
        gtin: Annotated[str, Query(pattern=GTIN)],
        lot: Annotated[str | None, Query(pattern=GS1_TEXT)] = None,
        serial: Annotated[str | None, Query(pattern=GS1_TEXT)] = None,
    ) -> dict[str, Any]:
        """Serials, lot quantities per site and location, pallets, downstream, recipients."""
        Unit.parse(gtin, lot, serial)
        key = trace_model.unit_key(gtin=gtin, lot=lot, serial=serial)
        found = (
            trace_queries.recall(c, lot=key)
            if key.kind == "lot"
            else trace_queries.recall(c, serials=[key])
        )
        out: dict[str, Any] = trace_model.to_json(found)
        return out

    @app.get("/stock", summary="Stock per site and location")
    def get_stock(
        _w: Viewer,
        c: Conn,
        site: Annotated[str | None, Query(pattern=PLAIN)] = None,
        location: Annotated[str | None, Query(pattern=PLAIN)] = None,
        gtin: Annotated[str | None, Query(pattern=GTIN)] = None,
        lot: Annotated[str | None, Query(pattern=GS1_TEXT)] = None,
        limit: Limit = 1000,
    ) -> dict[str, Any]:
        _check_keys(gtin, None)
        rows = queries.stock(c, site=site, location=location, gtin=gtin, lot=lot, limit=limit)
        return {"rows": rows, "count": len(rows)}

    @app.get("/expiring", summary="Lots in stock expiring within N days")
    def get_expiring(
        _w: Viewer,
        c: Conn,
        days: Annotated[int, Query(ge=0, le=3650)] = 30,
        limit: Limit = 1000,
    ) -> dict[str, Any]:
        rows = queries.expiring(c, days=days, today=date.today(), limit=limit)
        return {"rows": rows, "count": len(rows)}

    @app.get("/gateways", summary="Gateways: online, last seen, seq, cache version, gaps")
    def get_gateways(_w: Viewer, c: Conn) -> dict[str, Any]:
        rows = queries.gateways(c)
        return {"rows": rows, "count": len(rows)}

    def _start(kind: str, body: UnitIn, who: Principal) -> dict[str, Any]:
        unit = Unit.parse(body.gtin, body.lot, body.serial, body.sscc)
        with engine.begin() as c:
            res = start_block(
                c,
                "recall" if kind == "recall" else "hold",
                unit,
                reason=body.reason,
                who=f"api:{who.name}",
                now=clock(),
            )
        if on_change is not None:
            on_change()
        return res.as_dict()

    @app.post("/holds", status_code=201, summary="Hold a lot, serial or SSCC")
    def post_hold(body: UnitIn, who: Manager) -> dict[str, Any]:
        return _start("hold", body, who)

    @app.post("/recalls", status_code=201, summary="Recall a lot, serial or SSCC")
    def post_recall(body: UnitIn, who: Manager) -> dict[str, Any]:
        return _start("recall", body, who)

    @app.post("/releases", status_code=201, summary="Lift a hold or recall")
    def post_release(body: ReleaseIn, who: Manager) -> dict[str, Any]:
        with engine.begin() as c:
            res = release_block(
                c, body.block_id, reason=body.reason, who=f"api:{who.name}", now=clock()
            )
        if on_change is not None:
            on_change()
        return res.as_dict()

    @app.get("/recalls/{block_id}", summary="A recall and its push status per gateway")
    def get_recall_status(
        block_id: Annotated[str, Path(pattern=BLOCK_ID)], _w: Viewer, c: Conn
    ) -> dict[str, Any]:
        return block_status(c, block_id)

    @app.get("/holds/{block_id}", summary="A hold and its push status per gateway")
    def get_hold_status(
        block_id: Annotated[str, Path(pattern=BLOCK_ID)], _w: Viewer, c: Conn
    ) -> dict[str, Any]:
        return block_status(c, block_id)

    def _fsma(c: Connection, first: date, last: date, tlc: list[str]) -> Any:
        try:
            check_range(first, last)
            tlcs = parse_tlcs(tlc) if tlc else None
        except FsmaError as exc:
            raise HTTPException(422, str(exc)) from None
        return fsma_report(c, first, last, tlcs)

    def _download(body: bytes, kind: str, first: date, last: date, report: Any) -> Response:
        ext = "xlsx" if kind == XLSX_TYPE else "csv"
        return Response(
            body,
            media_type=kind,
            headers={
                "Content-Disposition": f'attachment; filename="fsma204-{first}-{last}.{ext}"',
                "X-Traceway-Missing-Cells": str(sum(report.missing.values())),
            },
        )

    First = Annotated[date, Query(alias="from", description="first date (YYYY-MM-DD)")]
    Last = Annotated[date, Query(alias="to", description="last date (YYYY-MM-DD)")]
    Tlcs = Annotated[
        list[str],
        Query(description="GTIN+LOT (encode + as %2B), repeatable; at most 1000"),
    ]

    @app.get(
        "/fsma204.xlsx",
        summary="FSMA 204 electronic sortable spreadsheet (one sheet per CTE)",
        response_class=Response,
        responses={200: {"content": {XLSX_TYPE: {}}}},
    )
    def get_fsma_xlsx(_w: Viewer, c: Conn, first: First, last: Last, tlc: Tlcs = []) -> Response:  # noqa: B006
        report = _fsma(c, first, last, tlc)
        try:
            body = to_xlsx(report)
        except FsmaError as exc:
            raise HTTPException(422, str(exc)) from None
        return _download(body, XLSX_TYPE, first, last, report)

    @app.get(
        "/fsma204.csv",
        summary="FSMA 204 KDEs as one CSV (a 'Critical Tracking Event' column first)",
        response_class=Response,
        responses={200: {"content": {"text/csv": {}}}},
    )
    def get_fsma_csv(_w: Viewer, c: Conn, first: First, last: Last, tlc: Tlcs = []) -> Response:  # noqa: B006
        report = _fsma(c, first, last, tlc)
        return _download(to_csv(report).encode("utf-8"), CSV_TYPE, first, last, report)

    def _csv_text(body: bytes) -> str:
        if len(body) > MAX_CSV_BYTES:
            raise HTTPException(413, f"at most {MAX_CSV_BYTES} bytes of CSV")
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            raise HTTPException(422, "the CSV is not UTF-8 text") from None

    def _import_catalog(kind: str, body: bytes, who: Principal) -> dict[str, Any]:
        data = _csv_text(body)
        name = f"{kind.replace('_', '-')}.csv"
        try:
            if kind == "products":
                parsed = Parsed(products=parse_products(data, name))
            elif kind == "lots":
                parsed = Parsed(lots=parse_lots(data, name))
            elif kind == "serials":
                parsed = Parsed(serials=parse_serials(data, name))
            else:
                parsed = Parsed(advices=parse_despatch_advices(data, name))
            with engine.begin() as c:
                done = store_and_publish(
                    c, parsed, names=(name, name, name), who=f"api:{who.name}", now=clock()
                )
        except ImportProblems as exc:
            raise HTTPException(422, exc.problems) from None
        if on_change is not None and done.published.mode != "none":
            on_change()
        imported = {
            "products": done.products,
            "lots": done.lots,
            "serials": done.serials,
            "despatch_advices": done.despatch_advices,
        }[kind]
        return {"imported": imported, "gateways": done.published.as_dict()}

    def _import_places(kind: str, body: bytes, who: Principal) -> dict[str, Any]:
        data = _csv_text(body)
        try:
            places = parse_places(data, f"{kind}.csv", kind)
            with engine.begin() as c:
                counts = (
                    store_places(c, sites=places)
                    if kind == "sites"
                    else store_places(c, partners=places)
                )
                audit(
                    c,
                    f"api:{who.name}",
                    f"import_{kind}",
                    {"kind": kind},
                    "master data import",
                    clock(),
                    {"rows": len(places), "keys": [p.key for p in places][:100]},
                )
        except ImportProblems as exc:
            raise HTTPException(422, exc.problems) from None
        return {"imported": counts.sites if kind == "sites" else counts.partners}

    CsvBody = Annotated[bytes, Body(media_type="text/csv", description="the CSV file")]

    @app.post("/masterdata/sites", summary="Import sites and their addresses (admin, CSV)")
    def post_sites(body: CsvBody, who: Admin) -> dict[str, Any]:
        return _import_places("sites", body, who)

    @app.post("/masterdata/partners", summary="Import trading partners (admin, CSV)")
    def post_partners(body: CsvBody, who: Admin) -> dict[str, Any]:
        return _import_places("partners", body, who)

    @app.post("/masterdata/products", summary="Import products (admin, CSV); pushed to gateways")
    def post_products(body: CsvBody, who: Admin) -> dict[str, Any]:
        return _import_catalog("products", body, who)

    @app.post("/masterdata/lots", summary="Import lots (admin, CSV); pushed to gateways")
    def post_lots(body: CsvBody, who: Admin) -> dict[str, Any]:
        return _import_catalog("lots", body, who)

    @app.post("/masterdata/serials", summary="Import serials (admin, CSV); pushed to gateways")
    def post_serials(body: CsvBody, who: Admin) -> dict[str, Any]:
        return _import_catalog("serials", body, who)

    @app.post(
        "/masterdata/despatch-advices",
        summary="Import despatch advices: SSCC contents (admin, CSV); pushed to gateways",
    )
    def post_despatch_advices(body: CsvBody, who: Admin) -> dict[str, Any]:
        return _import_catalog("despatch_advices", body, who)

    @app.get("/audit", summary="The audit log (admin)")
    def get_audit(_w: Admin, c: Conn, limit: Limit = 100) -> dict[str, Any]:
        rows = [
            {
                "id": r[0],
                "at": r[1].isoformat(),
                "actor": r[2],
                "action": r[3],
                "target": r[4],
                "reason": r[5],
                "detail": r[6],
            }
            for r in c.execute(
                text(
                    "SELECT id, at, actor, action, target, reason, detail FROM audit_log "
                    "ORDER BY id DESC LIMIT :n"
                ),
                {"n": limit},
            )
        ]
        return {"rows": rows, "count": len(rows)}

    return app
