"""What processing one scan produced: the record reported to the operator after commit."""

from __future__ import annotations

from drivers.scanners.escapes import make_visible
from drivers.scanners.types import RawScan
from gateway.rules.decide import Reason
from gs1.interpret import Interpretation
from gs1.value import value_type


@value_type
class Outcome:
    """What processing a scan produced; reported to the operator after commit."""

    scan: RawScan
    station: str
    kind: str  # event | alert | control
    verdict: str
    reasons: tuple[Reason, ...]
    summary: str
    seq: int | None = None
    event_id: str | None = None
    interpretation: Interpretation | None = None
    movement: str | None = None
    print_job: str | None = None  # printer name when a label job was queued

    def line(self) -> str:
        """One plain-words log line for this scan."""
        head = f"{self.verdict.upper():6} {self.station}"
        why = "; ".join(f"{r.code}: {r.message}" for r in self.reasons)
        seq = f" seq={self.seq}" if self.seq is not None else ""
        tail = f" — {why}" if why else ""
        # barcode data is untrusted: control characters never reach the log raw
        return make_visible(f"{head} {self.summary}{tail}{seq}")
