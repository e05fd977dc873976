"""Cut a scanner's byte stream into frames, and a frame into codes (pure, no I/O).

Shared by the serial and TCP readers. A frame ends at

* a terminator (``FramerConfig.terminator``: ``|``-separated alternatives such as
  ``"\\r\\n|\\r|\\n"``; the earliest match wins, and the longest alternative at that
  position). ``CR`` then ``LF`` never yields an extra frame: the empty frame between
  them is dropped, also when CR and LF arrive in separate reads;
* ``ETX`` when ``stx_etx`` is on: then *only* ``STX ... ETX`` delimits frames and the
  terminator setting is ignored. Bytes outside a frame are ignored (CR/LF silently,
  anything else counted in :attr:`Framer.garbage_bytes`). A second ``STX`` before
  ``ETX`` abandons the partial frame (counted as garbage) and starts a new one;
* ``idle_timeout`` seconds of silence (if > 0). In ``stx_etx`` mode an unfinished
  frame at idle timeout is incomplete and is discarded as garbage.

A frame longer than ``max_length`` bytes is reported once as ``too_long``; the rest,
up to the next terminator / ETX / idle timeout, is discarded.

Inside a frame every byte is data, including GS (0x1D), RS (0x1E) and EOT (0x04).
Text is decoded with ``encoding`` (bad bytes become U+FFFD, never an exception), CR
and LF around the frame and around each code are stripped (other whitespace is data).

Classification of a decoded frame, in this order:

1. empty (after stripping) -> dropped;
2. equal to ``heartbeat`` -> ``heartbeat``;
3. split at ``separator`` (if set); empty codes are dropped;
4. codes equal to ``no_read`` are removed and counted in :attr:`Frame.no_reads`;
   if no code is left, the frame is ``no_read`` (this covers a whole-frame no-read
   token as well as a tunnel that reports ``NOREAD;NOREAD``). A partial read
   (``A;NOREAD``) is a ``codes`` frame with the real codes and ``no_reads == 1``.

``heartbeat``, ``no_read`` and ``separator`` may use the escapes of
:func:`~drivers.scanners.escapes.unescape` (``\\x1d``, ``<GS>`` ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from drivers.scanners.config import FramerConfig
from drivers.scanners.escapes import unescape

STX = 0x02
ETX = 0x03
FrameKind = Literal["codes", "no_read", "heartbeat", "too_long"]
_CRLF = "\r\n"


@dataclass(frozen=True, slots=True)
class Frame:
    """One complete frame: its codes (decoded text), what kind it is, and its raw bytes."""

    codes: tuple[str, ...]
    kind: FrameKind
    raw: bytes
    no_reads: int = 0  # no-read tokens removed from a multi-code frame


def parse_terminators(spec: str, encoding: str = "latin-1") -> tuple[bytes, ...]:
    """Terminator alternatives from a config string, longest first (``""`` -> none)."""
    if spec == "":
        return ()
    alts = [unescape(a).encode(encoding) for a in spec.split("|")]
    if any(a == b"" for a in alts):
        raise ValueError(f"empty terminator alternative in {spec!r}")
    return tuple(sorted(dict.fromkeys(alts), key=len, reverse=True))  # stable, no dups


class Framer:
    """Incremental framer: feed bytes with a monotonic time, get complete frames back."""

    def __init__(self, cfg: FramerConfig) -> None:
        self._cfg = cfg
        self._terms = () if cfg.stx_etx else parse_terminators(cfg.terminator, cfg.encoding)
        self._max_term = max((len(t) for t in self._terms), default=1)
        self._heartbeat = unescape(cfg.heartbeat)
        self._no_read = unescape(cfg.no_read)
        self._separator = unescape(cfg.separator)
        #: Bytes seen outside STX ... ETX (and abandoned partial frames); for logging.
        self.garbage_bytes = 0
        self.reset()

    def reset(self) -> None:
        """Forget any partial frame (e.g. after a disconnect)."""
        self._buf = bytearray()
        self._scan_from = 0  # where the terminator search resumes
        self._in_frame = not self._cfg.stx_etx  # stx mode: inside STX ... ETX?
        self._discarding = False  # after too_long: drop bytes until the frame ends
        self._last_byte: float | None = None

    @property
    def pending(self) -> bytes:
        """Bytes of the frame in progress (for a log line when a partial frame is lost)."""
        return bytes(self._buf)

    def _busy(self) -> bool:
        if self._cfg.stx_etx:
            return self._in_frame or self._discarding
        return bool(self._buf) or self._discarding

    def next_deadline(self) -> float | None:
        """Monotonic time at which :meth:`flush_idle` will end the frame in progress."""
        if self._cfg.idle_timeout <= 0 or self._last_byte is None or not self._busy():
            return None
        return self._last_byte + self._cfg.idle_timeout

    def flush_idle(self, now: float) -> list[Frame]:
        """End the frame in progress if the stream has been silent for ``idle_timeout``."""
        deadline = self.next_deadline()
        if deadline is None or now < deadline:
            return []
        out: list[Frame] = []
        if self._discarding:
            self._discarding = False
        elif self._cfg.stx_etx:
            self.garbage_bytes += len(self._buf) + 1  # + the STX
        elif len(self._buf) > self._cfg.max_length:
            out.append(self._too_long(bytes(self._buf)))
        else:
            self._finish(bytes(self._buf), out)
        self._buf.clear()
        self._scan_from = 0
        self._in_frame = not self._cfg.stx_etx
        return out

    def feed(self, data: bytes, now: float) -> list[Frame]:
        """Add bytes received at ``now``; return the frames they complete."""
        out = self.flush_idle(now)
        if not data:
            return out
        self._last_byte = now
        if self._cfg.stx_etx:
            self._feed_stx(data, out)
        else:
            self._feed_terms(data, out)
        return out

    # -- terminator / idle mode -------------------------------------------------
    def _feed_terms(self, data: bytes, out: list[Frame]) -> None:
        self._buf += data
        while True:
            hit = self._find_term()
            if hit is None:
                break
            pos, tlen = hit
            if self._discarding:
                self._discarding = False
            elif pos > self._cfg.max_length:
                out.append(self._too_long(bytes(self._buf[:pos])))
            else:
                self._finish(bytes(self._buf[:pos]), out)
            del self._buf[: pos + tlen]
            self._scan_from = 0
        # Without a terminator in sight: everything but a possible terminator prefix
        # at the end is frame content.
        content = len(self._buf) - (self._max_term - 1) if self._terms else len(self._buf)
        if self._discarding:
            keep = self._max_term - 1 if self._terms else 0
            if len(self._buf) > keep:
                del self._buf[: len(self._buf) - keep]
        elif content > self._cfg.max_length:
            out.append(self._too_long(bytes(self._buf)))
            self._discarding = True
            keep = self._max_term - 1 if self._terms else 0
            del self._buf[: len(self._buf) - keep]
        self._scan_from = max(0, len(self._buf) - (self._max_term - 1))

    def _find_term(self) -> tuple[int, int] | None:
        best: tuple[int, int] | None = None
        for term in self._terms:  # longest first: on equal position the longest wins
            pos = self._buf.find(term, self._scan_from)
            if pos >= 0 and (best is None or pos < best[0]):
                best = (pos, len(term))
        return best

    # -- STX ... ETX mode ---------------------------------------------------------
    def _feed_stx(self, data: bytes, out: list[Frame]) -> None:
        i, n = 0, len(data)
        while i < n:
            if not self._in_frame:
                j = data.find(bytes((STX,)), i)
                end = n if j < 0 else j
                self.garbage_bytes += sum(1 for b in data[i:end] if b not in (0x0A, 0x0D))
                if j < 0:
                    return
                self._in_frame, self._discarding = True, False
                self._buf.clear()
                i = j + 1
                continue
            stop = _first_of(data, i, (STX, ETX))
            chunk = data[i : n if stop < 0 else stop]
            if not self._discarding:
                self._buf += chunk
                if len(self._buf) > self._cfg.max_length:
                    out.append(self._too_long(bytes(self._buf)))
                    self._discarding = True
                    self._buf.clear()
            if stop < 0:
                return
            if data[stop] == STX:  # a new frame starts before this one ended
                if not self._discarding:
                    self.garbage_bytes += len(self._buf) + 1
                self._buf.clear()
                self._discarding = False
            else:
                if not self._discarding:
                    self._finish(bytes(self._buf), out)
                self._buf.clear()
                self._in_frame = self._discarding = False
            i = stop + 1

    # -- classification -----------------------------------------------------------
    def _too_long(self, raw: bytes) -> Frame:
        raw = raw[: self._cfg.max_length]
        return Frame((), "too_long", raw)

    def _finish(self, raw: bytes, out: list[Frame]) -> None:
        frame = self.classify(raw)
        if frame is not None:
            out.append(frame)

    def classify(self, raw: bytes) -> Frame | None:
        """Turn the bytes of one complete frame into a :class:`Frame` (None: empty)."""
        text = raw.decode(self._cfg.encoding, errors="replace").strip(_CRLF)
        if text == "":
            return None
        if self._heartbeat and text == self._heartbeat:
            return Frame((), "heartbeat", raw)
        parts = text.split(self._separator) if self._separator else [text]
        codes = [c for c in (p.strip(_CRLF) for p in parts) if c]
        if not codes:
            return None
        no_reads = sum(1 for c in codes if self._no_read and c == self._no_read)
        if no_reads:
            codes = [c for c in codes if c != self._no_read]
        if not codes:
            return Frame((), "no_read", raw, no_reads)
        return Frame(tuple(codes), "codes", raw, no_reads)


def _first_of(data: bytes, start: int, values: tuple[int, ...]) -> int:
    hits = [p for p in (data.find(bytes((v,)), start) for v in values) if p >= 0]
    return min(hits) if hits else -1
