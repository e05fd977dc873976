"""The EPCIS 2.0 REST binding: ``GET /epcis/events``, ``POST /epcis/capture``,
``GET /epcis/capture/{captureID}`` (mounted by :func:`central.api.app.create_app`).

Errors are RFC 7807 problem documents (``application/problem+json``) with the
standard's exception types: a bad query parameter or page token is a 400
``QueryParameterException``; a document that fails the official JSON Schema is a 400
``ValidationException`` whose ``errors`` list says where and what. Capture needs the
``recall-manager`` role (what partners send changes what trace and recall answer);
reading needs ``viewer``.
"""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Engine

from central.epcis import service
from central.epcis.models import (
    LIST_PARAMS,
    QUERY_PARAMETER_EXCEPTION,
    TIME_PARAMS,
    VALIDATION_EXCEPTION,
    Cursor,
    QueryParameterError,
    build_query,
    decode_token,
    encode_token,
    parse_query,
    problem,
    sign,
    unsign,
)
from central.epcis.schema import Validate

#: The largest document a capture takes (bytes) and the most events in one.
MAX_CAPTURE_BYTES = 20 * 1024 * 1024
MAX_CAPTURE_EVENTS = 10_000
VERSION_HEADERS = {"GS1-EPCIS-Version": "2.0.0", "GS1-CBV-Version": "2.0.0"}
JSON_TYPES = ("application/json", "application/ld+json")


#: The query parameters as OpenAPI lists them (they are read from the query string by hand,
#: so that every refusal is the standard's QueryParameterException).
QUERY_PARAMETERS: list[dict[str, Any]] = [
    *(
        {
            "name": n,
            "in": "query",
            "required": False,
            "style": "pipeDelimited",
            "explode": False,
            "schema": {"type": "array", "items": {"type": "string"}},
        }
        for n in LIST_PARAMS
    ),
    *(
        {
            "name": n,
            "in": "query",
            "required": False,
            "schema": {"type": "string", "format": "date-time"},
        }
        for n in TIME_PARAMS
    ),
    {
        "name": "perPage",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "default": 30},
    },
    {"name": "nextPageToken", "in": "query", "required": False, "schema": {"type": "string"}},
]


def _problem(kind: str, title: str, status: int, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse(
        problem(kind, title, status, detail, **extra),
        status_code=status,
        media_type="application/problem+json",
        headers=VERSION_HEADERS,
    )


def _bad_query(detail: str) -> JSONResponse:
    return _problem(QUERY_PARAMETER_EXCEPTION, "Invalid query parameter", 400, detail)


def router(
    engine: Engine,
    viewer: Callable[..., Any],
    manager: Callable[..., Any],
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    validator: Validate | None = None,
) -> APIRouter:
    """The EPCIS routes; ``viewer``/``manager`` are the API's role dependencies."""
    api = APIRouter(prefix="/epcis", tags=["EPCIS 2.0"])
    secret: list[bytes] = []

    def key() -> bytes:
        if not secret:
            with engine.connect() as c:
                secret.append(service.page_secret(c))
        return secret[0]

    @api.get(
        "/events",
        name="epcis_events",
        summary="EPCIS 2.0 query: events (EPCISQueryDocument), paged with nextPageToken",
        responses={400: {"description": "QueryParameterException (problem+json)"}},
        openapi_extra={"parameters": QUERY_PARAMETERS},
    )
    def get_events(request: Request, _w: Annotated[Any, Depends(viewer)]) -> Response:
        now = clock()
        try:
            query, per_page, token = parse_query(request.query_params.multi_items())
            after: Cursor | None = None
            if token is not None:
                params, after = decode_token(key(), token, now)
                if query.params and query.params != build_query(params).params:
                    raise QueryParameterError(
                        "nextPageToken belongs to another query: repeat its parameters "
                        "unchanged or leave them out"
                    )
                query = build_query(params)
            with engine.connect() as c:
                rows, nxt = service.query_events(c, query, per_page, after)
        except QueryParameterError as exc:
            return _bad_query(str(exc))
        doc = service.query_document([r.event for r in rows], now)
        headers = dict(VERSION_HEADERS)
        if nxt is not None:
            tok, expires = encode_token(key(), query, nxt, now)
            url = str(request.url_for("epcis_events"))
            link = url + "?" + urlencode({"perPage": per_page, "nextPageToken": tok})
            headers["Link"] = f'<{link}>; rel="next"'
            headers["GS1-Next-Page-Token-Expires"] = expires.isoformat().replace("+00:00", "Z")
        ld = "application/ld+json" in request.headers.get("accept", "")
        return JSONResponse(
            doc, headers=headers, media_type="application/ld+json" if ld else "application/json"
        )

    @api.post(
        "/capture",
        status_code=202,
        summary="EPCIS 2.0 capture: an EPCISDocument (JSON / JSON-LD) from a trading partner",
        responses={
            202: {"description": "captured; Location names the capture job"},
            400: {"description": "ValidationException: the schema's errors (problem+json)"},
            413: {"description": "CaptureLimitExceededException"},
            415: {"description": "not JSON"},
            503: {"description": "the EPCIS JSON Schema is not installed"},
        },
    )
    async def post_capture(request: Request, who: Annotated[Any, Depends(manager)]) -> Response:
        ctype = request.headers.get("content-type", "")
        if ctype.split(";")[0].strip().lower() not in JSON_TYPES:
            return _problem(
                "epcisException:UnsupportedMediaType",
                "Unsupported media type",
                415,
                "send the EPCIS document as application/json or application/ld+json",
            )
        behaviour = request.headers.get("GS1-Capture-Error-Behaviour", "rollback")
        if behaviour != "rollback":
            return _problem(
                VALIDATION_EXCEPTION,
                "Unsupported capture error behaviour",
                400,
                "this repository captures all or nothing (GS1-Capture-Error-Behaviour: rollback)",
            )
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_CAPTURE_BYTES:
            return _too_large(f"the document is larger than {MAX_CAPTURE_BYTES} bytes")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_CAPTURE_BYTES:
                return _too_large(f"the document is larger than {MAX_CAPTURE_BYTES} bytes")
        if validator is None:
            return _problem(
                "epcisException:ImplementationException",
                "Capture is not available",
                503,
                "the official EPCIS 2.0 JSON Schema is not installed on this server "
                "(run .ci/fetch-epcis-schema or set TRACEWAY_EPCIS_SCHEMA)",
            )
        actor = f"api:{who.name}"
        return capture_response(engine, bytes(body), ctype, actor, clock(), validator)

    @api.get(
        "/capture",
        summary="Capture jobs, newest first (perPage, nextPageToken)",
        openapi_extra={"parameters": QUERY_PARAMETERS[-2:]},
    )
    def list_captures(request: Request, _w: Annotated[Any, Depends(viewer)]) -> Response:
        now = clock()
        try:
            pairs = request.query_params.multi_items()
            unknown = sorted({k for k, _ in pairs} - {"perPage", "nextPageToken"})
            if unknown:
                raise QueryParameterError(f"unknown parameter {unknown[0][:60]!r}")
            _q, per_page, token = parse_query(pairs)
            before = None
            if token is not None:
                body = unsign(key(), "captures", token, now)
                before = body.get("b")
                if not isinstance(before, int):
                    raise QueryParameterError("nextPageToken: not a token of this listing")
            with engine.connect() as c:
                jobs, nxt = service.capture_jobs(c, per_page, before)
        except QueryParameterError as exc:
            return _bad_query(str(exc))
        headers = dict(VERSION_HEADERS)
        if nxt is not None:
            tok, expires = sign(key(), "captures", {"b": nxt}, now)
            url = str(request.url_for("list_captures"))
            link = url + "?" + urlencode({"perPage": per_page, "nextPageToken": tok})
            headers["Link"] = f'<{link}>; rel="next"'
            headers["GS1-Next-Page-Token-Expires"] = expires.isoformat().replace("+00:00", "Z")
        return JSONResponse(jobs, headers=headers)

    @api.options("/capture", status_code=204, summary="Discover the capture interface's limits")
    def options_capture(_w: Annotated[Any, Depends(viewer)]) -> Response:
        return Response(
            status_code=204,
            headers={
                **VERSION_HEADERS,
                "Allow": "GET, OPTIONS, POST",
                "GS1-EPCIS-Capture-Limit": str(MAX_CAPTURE_EVENTS),
                "GS1-EPCIS-Capture-File-Size-Limit": str(MAX_CAPTURE_BYTES),
                "GS1-Capture-Error-Behaviour": "rollback",
                "GS1-EPC-Format": "Never_Translates",
            },
        )

    @api.get("/capture/{capture_id}", summary="A capture job: running, success, errors")
    def get_capture(
        capture_id: Annotated[str, Path(pattern=r"^cap-[0-9]{1,18}$")],
        _w: Annotated[Any, Depends(viewer)],
    ) -> Response:
        with engine.connect() as c:
            job = service.capture_job(c, capture_id)
        if job is None:
            return _problem(
                "epcisException:NoSuchResourceException",
                "No such capture job",
                404,
                f"there is no capture job {capture_id}",
            )
        return JSONResponse(job, headers=VERSION_HEADERS)

    return api


def _too_large(detail: str) -> JSONResponse:
    return _problem(
        "epcisException:CaptureLimitExceededException", "Capture limit exceeded", 413, detail
    )


def capture_response(
    engine: Engine,
    body: bytes,
    content_type: str | None,
    actor: str,
    now: datetime,
    validator: Validate,
) -> JSONResponse:
    """Validate, then store (202 + Location) or refuse (400, the document kept as a failed job)."""
    try:
        with engine.begin() as c:
            out, errors = service.capture(
                c, body, content_type, actor, now, validator, max_events=MAX_CAPTURE_EVENTS
            )
    except service.CaptureLimitError as exc:
        return _too_large(str(exc))
    location = f"/epcis/capture/{out.capture_id}"
    if not out.success:
        return _problem(
            VALIDATION_EXCEPTION,
            "The document is not a valid EPCIS 2.0 document",
            400,
            "; ".join(errors)[:2000],
            instance=location,
            errors=errors,
            captureID=out.capture_id,
        )
    return JSONResponse(out.job, status_code=202, headers={**VERSION_HEADERS, "Location": location})
