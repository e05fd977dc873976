"""HID POS bar code scanner reports (usage page 0x8C) -> scans. Pure.

Report layout implemented (as read from hidraw, report ID first; Honeywell "HID POS",
Access-IS and compatible scanners; 64 bytes):

    byte 0        report ID (0x02 = scanned data; other IDs are ignored)
    byte 1        number of valid data bytes in this report (0..56)
    bytes 2..4    AIM symbology identifier, e.g. "]C1" (zeros if the scanner sends none)
    bytes 5..60   decoded data, zero padded; GS arrives as the byte 0x1D
    byte 61       vendor symbology code (Honeywell code ID), not used
    byte 62       reserved
    byte 63       bit 0: "decoded data continued" - more reports of this scan follow

A code longer than 56 bytes comes as several reports; each repeats the AIM id, all but the
last have the continued bit set. Offsets are parameters (``HidPosLayout``) for scanners
that differ.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.scanners.keyboard_decoder import DecodedScan, DecodeError

USAGE_PAGE_BARCODE_SCANNER = 0x8C


@dataclass(frozen=True, slots=True)
class HidPosLayout:
    """Byte offsets of a scanned-data input report (including the report ID byte)."""

    report_id: int | None = 0x02
    length_offset: int = 1
    aim_offset: int = 2
    aim_size: int = 3
    data_offset: int = 5
    data_size: int = 56
    flags_offset: int = 63
    more_mask: int = 0x01


class HidPosAssembler:
    """Joins continued reports into one scan; one instance per device."""

    def __init__(
        self,
        layout: HidPosLayout | None = None,
        *,
        max_length: int = 4096,
        encoding: str = "latin-1",
        incomplete_timeout: float = 1.0,
    ) -> None:
        self.layout = layout or HidPosLayout()
        self.max_length = max_length
        self.encoding = encoding
        self.incomplete_timeout = incomplete_timeout
        self._aim = b""
        self._data = bytearray()
        self._pending = False
        self._error: tuple[DecodeError, str] | None = None
        self._last_t = 0.0

    @property
    def pending(self) -> bool:
        """True while a continued message waits for its last report."""
        return self._pending

    def feed(self, report: bytes, t: float = 0.0) -> list[DecodedScan]:
        """Process one input report; returns the scan it completed, if any."""
        lay = self.layout
        if lay.report_id is not None and (not report or report[0] != lay.report_id):
            return []
        out = self.flush_idle(t)
        if len(report) <= lay.length_offset:
            return [*out, DecodedScan("", "decode_error", t, f"short report ({len(report)} bytes)")]
        n = report[lay.length_offset]
        end = lay.data_offset + n
        if n > lay.data_size or end > len(report):
            self._reset()
            detail = f"length byte {n} does not fit a {len(report)}-byte report"
            return [*out, DecodedScan("", "decode_error", t, detail)]
        aim = bytes(report[lay.aim_offset : lay.aim_offset + lay.aim_size])
        more = len(report) > lay.flags_offset and bool(report[lay.flags_offset] & lay.more_mask)
        if self._pending and aim != self._aim:
            self._error = self._error or (
                "decode_error",
                "symbology identifier changed inside a continued message",
            )
        if not self._pending:
            self._aim = aim
        self._pending = True
        self._last_t = t
        if len(self._data) + n > self.max_length:
            self._error = self._error or ("frame_too_long", f"longer than {self.max_length} bytes")
        else:
            self._data += report[lay.data_offset : end]
        if more:
            return out
        return [*out, self._complete(t)]

    def flush_idle(self, now: float) -> list[DecodedScan]:
        """Report a continued message whose last report never came (after the timeout)."""
        if self._pending and now - self._last_t >= self.incomplete_timeout > 0:
            text = self._text()
            self._reset()
            return [DecodedScan(text, "decode_error", self._last_t, "last report missing")]
        return []

    def _text(self) -> str:
        prefix = self._aim.decode("latin-1") if self._aim.startswith(b"]") else ""
        return prefix + bytes(self._data).decode(self.encoding, errors="replace")

    def _complete(self, t: float) -> DecodedScan:
        text, error = self._text(), self._error
        self._reset()
        if error is not None:
            return DecodedScan(text, error[0], t, error[1])
        return DecodedScan(text, None, t)

    def _reset(self) -> None:
        self._aim, self._data, self._pending, self._error = b"", bytearray(), False, None


def usage_pages(descriptor: bytes) -> set[int]:
    """Usage pages a HID report descriptor declares (global Usage Page and 32-bit usages)."""
    pages: set[int] = set()
    i = 0
    while i < len(descriptor):
        prefix = descriptor[i]
        if prefix == 0xFE:  # long item: size, tag, data
            if i + 1 >= len(descriptor):
                break
            i += 3 + descriptor[i + 1]
            continue
        size = (0, 1, 2, 4)[prefix & 0x03]
        data = int.from_bytes(descriptor[i + 1 : i + 1 + size], "little")
        kind, tag = (prefix >> 2) & 0x03, prefix >> 4
        if kind == 1 and tag == 0:  # global Usage Page
            pages.add(data)
        elif kind == 2 and size == 4 and tag in (0, 1, 2):  # local extended usage
            pages.add(data >> 16)
        i += 1 + size
    return pages


def is_hidpos_scanner(descriptor: bytes) -> bool:
    """True if a report descriptor uses the bar code scanner usage page (0x8C)."""
    return USAGE_PAGE_BARCODE_SCANNER in usage_pages(descriptor)
