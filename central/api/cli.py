"""``serve``, ``hold``, ``recall-start``, ``release`` and ``token`` (add / list / revoke)."""

from __future__ import annotations

import argparse
import getpass
import json
import logging
from datetime import UTC, datetime
from pathlib import Path

from central.config import CentralConfig, load_config


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the API and recall-push sub-commands."""
    s = sub.add_parser("serve", help="run the REST API and the recall pusher")
    s.add_argument("--config", "-c", required=True, type=Path, help="central TOML file")
    s.add_argument(
        "--no-push",
        action="store_true",
        help="API only (no MQTT pusher, no republish requests for seq gaps)",
    )
    s.set_defaults(func=cmd_serve)
    for name, kind, text in (
        ("hold", "hold", "hold a lot, serial or SSCC at every site that may hold it"),
        ("recall-start", "recall", "recall a lot, serial or SSCC (pushed to the gateways)"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--config", "-c", required=True, type=Path, help="central TOML file")
        p.add_argument("--gtin")
        p.add_argument("--lot")
        p.add_argument("--serial")
        p.add_argument("--sscc")
        p.add_argument("--reason", required=True)
        p.add_argument("--who", default=None, help="who decides (default: your login)")
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=cmd_block, kind=kind)
    r = sub.add_parser("release", help="lift a hold or recall (H-… / R-…)")
    r.add_argument("--config", "-c", required=True, type=Path, help="central TOML file")
    r.add_argument("block_id")
    r.add_argument("--reason", required=True)
    r.add_argument("--who", default=None)
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=cmd_release)
    t = sub.add_parser("token", help="API tokens: add (printed once), list, revoke")
    tsub = t.add_subparsers(dest="token_command", required=True)
    ta = tsub.add_parser("add", help="create a token and print it once")
    ta.add_argument("--role", required=True, choices=("viewer", "recall-manager", "admin"))
    ta.add_argument("--name", required=True)
    ta.add_argument("--config", "-c", required=True, type=Path, help="central TOML file")
    ta.set_defaults(func=cmd_token_add)
    tl = tsub.add_parser("list", help="list tokens (names and roles, never secrets)")
    tl.add_argument("--config", "-c", required=True, type=Path, help="central TOML file")
    tl.set_defaults(func=cmd_token_list)
    tr = tsub.add_parser("revoke", help="revoke a token by name")
    tr.add_argument("name")
    tr.add_argument("--config", "-c", required=True, type=Path, help="central TOML file")
    tr.set_defaults(func=cmd_token_revoke)


def _engine(cfg: CentralConfig):  # type: ignore[no-untyped-def]
    from central.db.engine import make_engine

    return make_engine(cfg.database.resolved_url(), cfg.database.pool_size)


def _store(cfg: CentralConfig, engine):  # type: ignore[no-untyped-def]
    from central.api.tokens import DbTokenStore, FileTokenStore

    if cfg.api.token_file is not None:
        return FileTokenStore(cfg.api.token_file)
    return DbTokenStore(engine)


def _who(args: argparse.Namespace) -> str:
    return str(args.who or f"cli:{getpass.getuser()}")


def _print_result(res: dict[str, object], as_json: bool) -> None:
    if as_json:
        print(json.dumps(res, indent=2))
        return
    sites = res["sites"] or {}
    assert isinstance(sites, dict)
    where = ", ".join(f"{s} → v{v}" for s, v in sites.items()) or "no gateway known yet"
    unit = res["unit"]
    assert isinstance(unit, dict)
    what = " ".join(f"{k}={v}" for k, v in unit.items())
    print(f"{res['block_id']} {res['action']} {what}: pushed to {where}")


def cmd_block(args: argparse.Namespace) -> int:
    from central.masterdata.holds import BlockError, Unit, start_block

    cfg = load_config(args.config)
    engine = _engine(cfg)
    try:
        unit = Unit.parse(args.gtin, args.lot, args.serial, args.sscc)
        with engine.begin() as c:
            res = start_block(
                c, args.kind, unit, reason=args.reason, who=_who(args), now=datetime.now(UTC)
            )
    except BlockError as exc:
        print(f"error: {exc}")
        return 1
    finally:
        engine.dispose()
    _print_result(res.as_dict(), args.json)
    return 0


def cmd_release(args: argparse.Namespace) -> int:
    from central.masterdata.holds import BlockError, release_block

    cfg = load_config(args.config)
    engine = _engine(cfg)
    try:
        with engine.begin() as c:
            res = release_block(
                c, args.block_id, reason=args.reason, who=_who(args), now=datetime.now(UTC)
            )
    except BlockError as exc:
        print(f"error: {exc}")
        return 1
    finally:
        engine.dispose()
    _print_result(res.as_dict(), args.json)
    return 0


def cmd_token_add(args: argparse.Namespace) -> int:
    from central.api.tokens import TokenError, new_token

    cfg = load_config(args.config)
    engine = _engine(cfg)
    try:
        token, row = new_token(args.name, args.role)
        _store(cfg, engine).add(row)
    except TokenError as exc:
        print(f"error: {exc}")
        return 1
    finally:
        engine.dispose()
    print(f"token for {row.name} ({row.role}); shown once, store it now:")
    print(token)
    return 0


def cmd_token_list(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    engine = _engine(cfg)
    try:
        rows = _store(cfg, engine).rows()
    finally:
        engine.dispose()
    for r in rows:
        print(f"{r.name}\t{r.role}\t{'revoked' if r.revoked else 'active'}")
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    engine = _engine(cfg)
    try:
        done = _store(cfg, engine).revoke(args.name)
    finally:
        engine.dispose()
    print(f"revoked {args.name}" if done else f"no active token named {args.name}")
    return 0 if done else 1


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from central.api.app import create_app
    from central.masterdata.push import CachePusher

    cfg = load_config(args.config)
    logging.basicConfig(
        level=cfg.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    engine = _engine(cfg)
    with engine.connect():
        pass  # an unreachable database exits 3 here, before anything listens
    pusher = (
        None
        if args.no_push
        else CachePusher(engine, cfg.broker, republish_after_s=cfg.ingest.republish_after_s)
    )
    if pusher is not None:
        pusher.start()
    on_change = pusher.publish_pending if pusher is not None else None
    app = create_app(engine, _store(cfg, engine), on_change=on_change)
    commander = None
    if cfg.web.enabled:
        from central.web.commands import GatewayCommander
        from central.web.views import mount_web

        commander = None if args.no_push else GatewayCommander(cfg.broker)
        if commander is not None:
            commander.start()
        secure = cfg.web.secure_cookies
        if secure is None:
            secure = cfg.api.host not in ("127.0.0.1", "::1", "localhost")
        mount_web(
            app,
            engine,
            commander=commander,
            on_change=on_change,
            session_hours=cfg.web.session_hours,
            secure_cookie=secure,
        )
    server = uvicorn.Server(
        uvicorn.Config(app, host=cfg.api.host, port=cfg.api.port, log_level="warning")
    )
    web = "web UI: /ui/, " if cfg.web.enabled else ""
    print(
        f"traceway-central API on http://{cfg.api.host}:{cfg.api.port} ({web}OpenAPI: "
        "/openapi.json)",
        flush=True,
    )
    try:
        server.run()
    finally:
        if commander is not None:
            commander.stop()
        if pusher is not None:
            pusher.stop()
        engine.dispose()
    return 0
