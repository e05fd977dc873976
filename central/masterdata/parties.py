"""Sites and trading partners from CSV, with their FSMA 204 location description: all or nothing.

- sites: ``site`` (the id events carry in ``site``) and ``name``; optional ``gln``,
  ``street``, ``city``, ``region`` (state), ``postal_code``, ``country`` (ISO 3166-1
  alpha-2, e.g. ``US``) and ``phone``
- partners: ``party`` (the id events carry as a party in ``from``/``to``: usually a GLN,
  ``unknown`` is not allowed) and ``name``; the same optional columns

A header row is required, extra columns are an error; a GLN (or a 13-digit party id) must
have a valid check digit. Every bad row is reported as ``file:line: message`` and nothing
is written unless all rows are good. Rows are upserted: a row replaces everything stored
for its site or party (an empty cell clears that field).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, text

from central.masterdata.importer import ImportProblems, _read, _rows, optional_text
from gs1.keys import is_valid_gln

_ID = re.compile(r"^[!-~]{1,64}$")  # printable ASCII, no spaces
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_PHONE = re.compile(r"^[0-9+()./ x-]{3,40}$")


@dataclass(frozen=True, slots=True)
class Place:
    """A site or a partner and its location description (None: not given)."""

    key: str
    name: str
    gln: str | None = None
    street: str | None = None
    city: str | None = None
    region: str | None = None
    postal_code: str | None = None
    country: str | None = None
    phone: str | None = None


@dataclass(frozen=True, slots=True)
class PartyCounts:
    sites: int
    partners: int


def _gln(value: str | None, what: str) -> str | None:
    if value is None:
        return None
    if not (value.isdigit() and len(value) == 13 and is_valid_gln(value)):
        raise ValueError(f"{what} {value!r} must be a GLN (13 digits, valid check digit)")
    return value


def parse_places(data: str, name: str, kind: str) -> list[Place]:
    """Sites (``kind`` "sites") or partners ("partners") from CSV text; ImportProblems lists
    every bad row."""
    key_col = "site" if kind == "sites" else "party"
    out: dict[str, tuple[int, Place]] = {}
    glns: dict[str, int] = {}
    problems: list[str] = []
    for line, row in _rows(data, name, kind):
        try:
            if "__error__" in row:
                raise ValueError(row["__error__"])
            key = row[key_col]
            if not _ID.match(key):
                raise ValueError(
                    f"{key_col} {key!r} must be 1 to 64 printable characters, no spaces"
                )
            if key.lower() == "unknown":
                raise ValueError(f"{key_col} 'unknown' is what events say when no one was named")
            if kind == "partners" and key.isdigit() and len(key) == 13:
                _gln(key, "party")
            title = optional_text(row, "name")
            if title is None:
                raise ValueError("name is required (the business name)")
            gln = _gln(optional_text(row, "gln"), "gln")
            country = optional_text(row, "country")
            if country is not None and not _COUNTRY.match(country.upper()):
                raise ValueError(f"country {country!r} must be an ISO 3166-1 code like US")
            phone = optional_text(row, "phone")
            if phone is not None and not _PHONE.match(phone):
                raise ValueError(f"phone {phone!r} must be digits, spaces and + ( ) - . / x")
            if key in out:
                raise ValueError(f"{key_col} {key} repeats line {out[key][0]}")
            if gln is not None and kind == "sites":
                if gln in glns:
                    raise ValueError(f"gln {gln} repeats line {glns[gln]}")
                glns[gln] = line
            place = Place(
                key,
                title,
                gln,
                optional_text(row, "street"),
                optional_text(row, "city"),
                optional_text(row, "region"),
                optional_text(row, "postal_code"),
                country.upper() if country else None,
                phone,
            )
            out[key] = (line, place)
        except ValueError as exc:
            problems.append(f"{name}:{line}: {exc}")
    if problems:
        raise ImportProblems(problems)
    return [p for _, p in out.values()]


def _upsert(conn: Connection, table: str, key_col: str, places: Sequence[Place]) -> None:
    cols = ("gln", "name", "street", "city", "region", "postal_code", "country", "phone")
    conn.execute(
        text(
            f"INSERT INTO {table} ({key_col}, {', '.join(cols)}) VALUES (:key, "
            + ", ".join(f":{c}" for c in cols)
            + f") ON CONFLICT ({key_col}) DO UPDATE SET "
            + ", ".join(f"{c} = EXCLUDED.{c}" for c in cols)
            + ", updated_at = now()"
        ),
        [
            {
                "key": p.key,
                "gln": p.gln,
                "name": p.name,
                "street": p.street,
                "city": p.city,
                "region": p.region,
                "postal_code": p.postal_code,
                "country": p.country,
                "phone": p.phone,
            }
            for p in places
        ],
    )


def store_places(
    conn: Connection, sites: Sequence[Place] = (), partners: Sequence[Place] = ()
) -> PartyCounts:
    """Upsert parsed sites and partners in the caller's transaction.

    A site's GLN may belong to one site only (ImportProblems names the clash)."""
    if sites:
        clash = conn.execute(
            text(
                "SELECT site, gln FROM sites WHERE gln = ANY (CAST(:g AS text[])) "
                "AND NOT site = ANY (CAST(:s AS text[]))"
            ),
            {"g": [p.gln for p in sites if p.gln], "s": [p.key for p in sites]},
        ).fetchall()
        if clash:
            raise ImportProblems([f"sites: GLN {g} already belongs to site {s}" for s, g in clash])
        _upsert(conn, "sites", "site", sites)
    if partners:
        _upsert(conn, "partners", "party", partners)
    return PartyCounts(len(sites), len(partners))


def import_places(
    conn: Connection, sites: Path | None = None, partners: Path | None = None
) -> PartyCounts:
    """Upsert sites and partners from CSV files in the caller's transaction (all or nothing)."""
    problems: list[str] = []
    parsed: dict[str, list[Place]] = {"sites": [], "partners": []}
    for kind, path in (("sites", sites), ("partners", partners)):
        if path is None:
            continue
        try:
            parsed[kind] = parse_places(_read(path), str(path), kind)
        except ImportProblems as exc:
            problems.extend(exc.problems)
    if problems:
        raise ImportProblems(problems)
    return store_places(conn, parsed["sites"], parsed["partners"])
