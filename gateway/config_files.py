"""Every file a gateway config names, checked before anything starts.

``check-config`` reports each problem; ``run`` refuses to start on the first one (exit 2),
so a missing seed CSV or certificate is a one-line error instead of a traceback or a
crash loop. Device paths (evdev, hidraw, serial ports, USB printers) are not checked:
they come and go with hot-plug and the readers retry them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from gateway.config import CacheConfig, ConfigError, GatewayConfig

#: At most this many problems are listed per seed CSV (then "… and N more").
MAX_CSV_PROBLEMS = 5


def _readable_file(path: Path) -> str | None:
    """Why ``path`` cannot be read as a file, or None."""
    if not path.exists():
        return f"{path}: file not found"
    if not path.is_file():
        return f"{path}: not a regular file"
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        return f"{path}: cannot be read ({exc.strerror})"
    return None


def _creatable(path: Path, also_created: set[Path]) -> str | None:
    """Why a file at ``path`` cannot be written or created, or None.

    ``also_created`` are folders that ``run`` creates itself (the database's folder).
    """
    if path.exists():
        if path.is_dir():
            return f"{path}: is a folder, not a file"
        if not os.access(path, os.W_OK):
            return f"{path}: not writable by this user"
        return None
    folder = path.parent
    if folder in also_created and not folder.exists():
        folder = next((p for p in folder.parents if p.exists()), Path("/"))
    if not folder.exists():
        return f"{path}: folder {folder} does not exist"
    if not folder.is_dir():
        return f"{path}: {folder} is not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"{path}: folder {folder} is not writable by this user"
    return None


def _csv_problems(path: Path, parse: Callable[[Path, list[str]], object]) -> list[str]:
    problems: list[str] = []
    parse(path, problems)
    if len(problems) > MAX_CSV_PROBLEMS:
        more = len(problems) - MAX_CSV_PROBLEMS
        problems = [*problems[:MAX_CSV_PROBLEMS], f"{path}: … and {more} more problem(s)"]
    return problems


def file_problems(cfg: GatewayConfig, file: str | Path, *, seeds: bool = True) -> list[ConfigError]:
    """Each missing, unreadable or unwritable file ``cfg`` names, as a ConfigError.

    ``seeds``: also check the seed CSVs (found, readable, and every row valid). ``run``
    leaves them to the start-up import, which reads them only while the cache is empty.
    """
    from drivers.printers.templates import TemplateError, load_templates
    from gateway.store.cache_import import parse_lots, parse_products, parse_serials

    out: list[ConfigError] = []

    def add(key: str, problem: str | None) -> None:
        if problem is not None:
            out.append(ConfigError(str(file), key, problem))

    db = cfg.storage.path
    made_by_run = {db.parent}
    add("storage.path", _creatable(db, made_by_run))
    if seeds:
        for key, path, parse in (
            ("cache.seed_products", cfg.cache.seed_products, parse_products),
            ("cache.seed_lots", cfg.cache.seed_lots, parse_lots),
            ("cache.seed_serials", cfg.cache.seed_serials, parse_serials),
        ):
            if path is None:
                continue
            missing = _readable_file(path)
            add(key, missing)
            if missing is None:
                for p in _csv_problems(path, parse):
                    add(key, p)
    # the broker's password and TLS files are checked (contents too) by
    # gateway.mqtt.tls.check_broker, which check-config and run call as well
    for name, sc in cfg.scanners.items():
        if sc.enabled and sc.type == "replay":
            add(f"scanners.{name}.path", _readable_file(sc.path))
        if sc.enabled and sc.type == "phone":
            for key in ("cert_file", "key_file"):
                path = getattr(sc, key)
                if path is not None:
                    add(f"scanners.{name}.{key}", _readable_file(path))
            if sc.cert_file is not None and _readable_file(sc.cert_file) is None:
                add(f"scanners.{name}.cert_file", _certificate_problem(sc.cert_file))
    for name, pc in cfg.printers.items():
        if pc.transport == "file":
            add(f"printers.{name}.path", _creatable(pc.path, made_by_run))
        if pc.labels_dir is not None:
            if not pc.labels_dir.is_dir():
                add(f"printers.{name}.labels_dir", f"{pc.labels_dir}: folder not found")
                continue
            try:
                load_templates([pc.labels_dir])
            except (TemplateError, OSError) as exc:
                add(f"printers.{name}.labels_dir", str(exc))
    return out


def _certificate_problem(path: Path) -> str | None:
    """Why a PEM certificate cannot be used (None when it loads)."""
    try:
        from cryptography import x509
    except ImportError:
        return "phone scanners need the 'phone' extra (pip install traceway[phone])"
    try:
        x509.load_pem_x509_certificate(path.read_bytes())
    except (ValueError, OSError) as exc:
        return f"{path}: not a PEM certificate ({exc})"
    return None


def seed_error(
    file: str | Path | None, cache: CacheConfig, problems: list[str], total: int | None = None
) -> ConfigError:
    """The first problem of a refused seed import, under the config key of its file.

    ``total`` counts every problem when the import listed only the first ones.
    """
    first = problems[0]
    key = "cache"
    for k, path in (
        ("cache.seed_products", cache.seed_products),
        ("cache.seed_lots", cache.seed_lots),
        ("cache.seed_serials", cache.seed_serials),
    ):
        if path is not None and first.startswith(f"{path}:"):
            key = k
    count = max(total or 0, len(problems))
    more = f" (and {count - 1} more problem(s))" if count > 1 else ""
    return ConfigError(str(file or "<config>"), key, first + more)
