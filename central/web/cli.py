"""``traceway-central user add|list|password|disable``: people who log in to the web UI."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from central.config import load_config


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``user`` sub-command."""
    u = sub.add_parser("user", help="web UI users: add, list, password, disable")
    usub = u.add_subparsers(dest="user_command", required=True)
    for name, text in (
        ("add", "create a user (asks for the password, or reads --password-file / -env)"),
        ("password", "set a user's password (and unlock them)"),
    ):
        p = usub.add_parser(name, help=text)
        p.add_argument("username")
        if name == "add":
            p.add_argument("--role", required=True, choices=("viewer", "recall-manager", "admin"))
        p.add_argument("--password-file", type=Path, help="read the password from this file")
        p.add_argument("--password-env", help="read the password from this environment variable")
        p.add_argument("--config", "-c", required=True, type=Path, help="central TOML file")
        p.set_defaults(func=cmd_user_add if name == "add" else cmd_user_password)
    ul = usub.add_parser("list", help="list users and roles (never passwords)")
    ul.add_argument("--config", "-c", required=True, type=Path, help="central TOML file")
    ul.set_defaults(func=cmd_user_list)
    ud = usub.add_parser("disable", help="disable a user and end their sessions")
    ud.add_argument("username")
    ud.add_argument("--config", "-c", required=True, type=Path, help="central TOML file")
    ud.set_defaults(func=cmd_user_disable)


def _password(args: argparse.Namespace) -> str:
    if args.password_file is not None:
        return Path(args.password_file).read_text(encoding="utf-8").strip()
    if args.password_env:
        value = os.environ.get(args.password_env)
        if value is None:
            raise SystemExit(f"environment variable {args.password_env} is not set")
        return value
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise SystemExit("the passwords differ")
    return first


def _engine(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from central.db.engine import make_engine

    return make_engine(load_config(args.config).database.resolved_url())


def cmd_user_add(args: argparse.Namespace) -> int:
    from central.web.auth import AuthError, add_user

    engine = _engine(args)
    try:
        with engine.begin() as c:
            add_user(c, args.username, args.role, _password(args), datetime.now(UTC))
    except AuthError as exc:
        print(f"traceway-central user add: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(f"user {args.username} ({args.role}) added")
    return 0


def cmd_user_password(args: argparse.Namespace) -> int:
    from central.web.auth import AuthError, set_password

    engine = _engine(args)
    try:
        with engine.begin() as c:
            done = set_password(c, args.username, _password(args))
    except AuthError as exc:
        print(f"traceway-central user password: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(f"password of {args.username} set" if done else f"no user {args.username}")
    return 0 if done else 1


def cmd_user_list(args: argparse.Namespace) -> int:
    from central.trace.model import table
    from central.web.auth import list_users

    engine = _engine(args)
    try:
        with engine.connect() as c:
            rows = list_users(c)
    finally:
        engine.dispose()
    print(
        table(
            [(r["username"], r["role"], r["created_at"], r["disabled_at"]) for r in rows],
            ("user", "role", "created", "disabled"),
        )
    )
    return 0


def cmd_user_disable(args: argparse.Namespace) -> int:
    from central.web.auth import disable_user

    engine = _engine(args)
    try:
        with engine.begin() as c:
            done = disable_user(c, args.username, datetime.now(UTC))
    finally:
        engine.dispose()
    print(f"user {args.username} disabled" if done else f"no active user {args.username}")
    return 0 if done else 1
