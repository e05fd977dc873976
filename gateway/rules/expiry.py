"""Expiry alerts, decided: which lots in stock to warn about today, and which are expired.

Pure: the daemon reads the stock of lots per location (with each product's warning
days) and what it already alerted today, and writes what :func:`expiry_alerts` returns.

- ``expired_in_stock`` (error): the lot's expiry date is before today and stock is on hand.
- ``expiry_warning`` (warning): it expires today or within the product's warning days
  (``expiry <= today + warning_days``, the same window as the scan rule ``near_expiry``).

At most one alert per kind, lot and location per day: a key alerted today is not alerted
again, whatever the number of checks or restarts. Lots without an expiry date, and rows
without stock, raise nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

ExpiryKind = Literal["expiry_warning", "expired_in_stock"]

#: (kind, gtin, lot, location): what "already alerted today" remembers.
AlertKey = tuple[str, str, str, str]


@dataclass(frozen=True, slots=True)
class LotStock:
    """The stock of one lot at one location (several rows of one key are added up)."""

    gtin: str
    lot: str
    location: str
    quantity: int
    expiry: date | None
    warning_days: int
    status: str = "active"


@dataclass(frozen=True, slots=True)
class ExpiryAlert:
    """One alert to raise: kind, the stock it is about, and days left (negative: expired)."""

    kind: ExpiryKind
    gtin: str
    lot: str
    location: str
    quantity: int
    expiry: date
    days_left: int
    status: str

    @property
    def key(self) -> AlertKey:
        return (self.kind, self.gtin, self.lot, self.location)

    @property
    def severity(self) -> str:
        return "error" if self.kind == "expired_in_stock" else "warning"

    def message(self) -> str:
        """One line for the operator and the central side."""
        where = f"at {self.location}" if self.location else "at the site (not put away)"
        what = f"lot {self.lot} of {self.gtin} {where}: {self.quantity} EA"
        if self.kind == "expired_in_stock":
            ago = -self.days_left
            when = "yesterday" if ago == 1 else f"{ago} days ago"
            return f"{what} expired on {self.expiry.isoformat()} ({when}) and are still in stock"
        if self.days_left == 0:
            return f"{what} expire today ({self.expiry.isoformat()})"
        days = "1 day" if self.days_left == 1 else f"{self.days_left} days"
        return f"{what} expire on {self.expiry.isoformat()} (in {days})"


def classify(expiry: date | None, warning_days: int, today: date) -> ExpiryKind | None:
    """Which alert a lot with this expiry deserves today, if any."""
    if expiry is None:
        return None
    if expiry < today:
        return "expired_in_stock"
    if expiry <= today + timedelta(days=max(warning_days, 0)):
        return "expiry_warning"
    return None


def expiry_alerts(
    stock: Iterable[LotStock], today: date, already: Collection[AlertKey] = ()
) -> list[ExpiryAlert]:
    """The alerts to raise today: one per kind, lot and location not in ``already``.

    Ordered by expiry, then GTIN, lot and location (most urgent first, deterministic).
    """
    totals: dict[tuple[str, str, str], LotStock] = {}
    for row in stock:
        k = (row.gtin, row.lot, row.location)
        seen = totals.get(k)
        if seen is None:
            totals[k] = row
        else:  # e.g. lot stock and serials of one lot at one place
            totals[k] = LotStock(
                row.gtin,
                row.lot,
                row.location,
                seen.quantity + row.quantity,
                seen.expiry,
                seen.warning_days,
                seen.status,
            )
    out: list[ExpiryAlert] = []
    for row in totals.values():
        if row.quantity <= 0 or row.expiry is None:
            continue
        kind = classify(row.expiry, row.warning_days, today)
        if kind is None or (kind, row.gtin, row.lot, row.location) in already:
            continue
        out.append(
            ExpiryAlert(
                kind,
                row.gtin,
                row.lot,
                row.location,
                row.quantity,
                row.expiry,
                (row.expiry - today).days,
                row.status,
            )
        )
    out.sort(key=lambda a: (a.expiry, a.gtin, a.lot, a.location))
    return out
