"""``traceway phone-pair``: pair a phone (QR code + URL), list paired phones, revoke one.

Works beside a running gateway: the paired phones live in a small file the gateway
re-reads (see :mod:`drivers.scanners.phone.registry`), so a new pairing code is usable
at once and a revoked phone is disconnected within a second.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from gateway.cli.exit_codes import ExitCode
from gateway.config import GatewayConfig, load_config


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add the ``phone-pair`` sub-command."""
    p = sub.add_parser(
        "phone-pair",
        help="pair a phone as a scanner (QR code), list paired phones, or revoke one",
        description=(
            "Print a QR code and URL with a one-time pairing code for a phone scanner "
            '(type = "phone"). The phone opens the gateway\'s page, gets a name and a '
            "token bound to a key that never leaves it. --list shows paired phones, "
            "--revoke NAME disconnects a phone and refuses it from then on."
        ),
    )
    p.add_argument("--config", "-c", required=True, type=Path, help="gateway TOML file")
    p.add_argument("--scanner", help="the phone scanner (default: the only one)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--list", action="store_true", help="list paired phones")
    g.add_argument("--revoke", metavar="NAME", help="revoke the phone called NAME")
    p.set_defaults(func=run)


def _phone_scanner(cfg: GatewayConfig, wanted: str | None) -> tuple[str, Any]:
    phones = {n: sc for n, sc in cfg.scanners.items() if sc.type == "phone"}
    if wanted is not None:
        if wanted not in phones:
            known = ", ".join(sorted(phones)) or "none"
            raise LookupError(
                f"no phone scanner {wanted!r} in the config (phone scanners: {known})"
            )
        return wanted, phones[wanted]
    if len(phones) != 1:
        raise LookupError(
            'the config has no phone scanner ([scanners.X] type = "phone")'
            if not phones
            else f"several phone scanners ({', '.join(sorted(phones))}): give --scanner"
        )
    return next(iter(phones.items()))


def run(args: argparse.Namespace) -> int:
    from drivers.scanners.phone.registry import Registry, active_devices, revoke
    from drivers.scanners.phone.server import PhoneReader

    cfg = load_config(args.config)
    try:
        name, sc = _phone_scanner(cfg, args.scanner)
    except LookupError as e:
        print(f"traceway phone-pair: {e}", file=sys.stderr)
        return ExitCode.CONFIG
    reader = PhoneReader(name, sc, lambda _scan: None, state_dir=cfg.storage.path.parent)
    registry = Registry(reader.registry.path)
    if args.list:
        devices = active_devices(registry.load())
        if not devices:
            print(f"{name}: no phone paired")
        for d in devices:
            when = datetime.fromtimestamp(d.paired_at).astimezone()
            print(f"{d.name}\tpaired {when:%Y-%m-%d %H:%M}\tscanner {name}.{d.name}")
        return 0
    if args.revoke:
        if not registry.update(lambda data: revoke(data, args.revoke, time.time())):
            print(f"traceway phone-pair: no paired phone called {args.revoke!r}", file=sys.stderr)
            return 1
        print(f"{name}: phone {args.revoke} revoked (disconnected within a second)")
        return 0
    reader.certs = reader._certificate()  # the same certificate the gateway serves
    token = registry.open_pairing(sc.pairing_ttl)
    reader.print_pairing(token, sys.stdout)
    return 0
