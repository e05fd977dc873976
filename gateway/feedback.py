"""Operator and conveyor feedback on each verdict: scanner beep, GPIO, MQTT, console.

Pure parts: :class:`FeedbackConfig`, :func:`build_verdict`, :func:`verdict_topic`,
:func:`console_line`, :func:`gpio_line`, :class:`PulseSchedule`. Thin shell:
:class:`Feedback` (called by the writer thread after commit; never blocks for long and
never raises), :class:`Pulser` (a thread that ends GPIO pulses), :class:`GpiozeroOut`
(gpiozero, an optional dependency, imported lazily).

Rules:

- ``accept`` and ``warn`` give the good-read beep (a warned scan *was* recorded; a bad
  beep would make the operator scan again); ``reject`` the bad-read beep.
- GPIO: ``accept`` pulses ``gpio_good``, ``warn`` pulses ``gpio_warn`` (else
  ``gpio_good``), ``reject`` pulses ``gpio_bad``. A pulse on a line that is already on
  extends it.
- A reject is never silent: if no configured output delivered it (no bad-read bytes, no
  GPIO line, no MQTT, console off), the console line is printed anyway, unless the
  caller says the reject is already in the log (the daemon's scan log, on the same
  terminal or journal): then it would be the same reject printed twice.

MQTT verdicts go to ``{root}/stations/{station}/verdict`` with **QoS 0, not retained**,
ideally with an MQTT 5 message expiry of a few seconds. A verdict is a real-time
actuation signal for a diverter: it is useful only while the package is still on its
way to the diverter. A QoS 1 message redelivered after a reconnect would arrive late and
act on the wrong package; a late actuation is worse than none. The durable record is the
event/alert in the outbox (QoS 1, at-least-once). The PLC must fail safe: a package
without a verdict in time goes to the reject lane.
"""

from __future__ import annotations

import heapq
import json
import logging
import queue
import sys
import threading
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TextIO, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from drivers.scanners.escapes import make_visible

if TYPE_CHECKING:
    from gateway.outcome import Outcome

log = logging.getLogger(__name__)

Verdict = Literal["accept", "warn", "reject"]
K = TypeVar("K", bound=Hashable)
VERDICT_SCHEMA = {"name": "traceway.verdict", "version": "1.0"}
MARKERS: Mapping[str, str] = {"accept": "✔ ACCEPT", "warn": "! WARN", "reject": "✖ REJECT"}
ASCII_MARKERS: Mapping[str, str] = {"accept": "OK ACCEPT", "warn": "!! WARN", "reject": "XX REJECT"}
RAW_SHOWN = 60  # characters of the scanned code on the console line


class FeedbackConfig(BaseModel):
    """``[stations.X.feedback]``: which outputs a station's verdicts drive."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    serial_beep: bool = Field(default=True, description="Send good/bad-read bytes to the scanner.")
    gpio_good: int | None = Field(default=None, ge=0, le=1023, description="Line pulsed on accept.")
    gpio_bad: int | None = Field(default=None, ge=0, le=1023, description="Line pulsed on reject.")
    gpio_warn: int | None = Field(default=None, ge=0, le=1023, description="Line pulsed on warn.")
    gpio_pulse: float = Field(default=0.5, gt=0, le=60, description="Pulse length in seconds.")
    gpio_chip: str = Field(
        default="",
        pattern=r"^(gpiochip[0-9]{1,3})?$",
        description="'' = gpiozero's default (finds the header's chip, also on a Pi 5).",
    )
    mqtt: bool = Field(default=False, description="Publish verdicts for a PLC/diverter.")
    console: bool = Field(default=True, description="One line per verdict on stdout.")


# -- pure builders ---------------------------------------------------------------------------


def verdict_topic(root: str, station: str) -> str:
    """``{root}/stations/{station}/verdict`` (root: ``GatewayTopics.root``)."""
    return f"{root}/stations/{station}/verdict"


def build_verdict(
    *,
    station: str,
    scanner: str,
    verdict: str,
    reasons: Sequence[str],
    seq: int | None,
    event_id: str | None,
    code: str,
) -> dict[str, Any]:
    """The verdict message for a PLC/diverter; ``divert`` is true for a reject."""
    return {
        "schema": dict(VERDICT_SCHEMA),
        "station": station,
        "scanner": scanner,
        "verdict": verdict,
        "reasons": list(reasons),
        "seq": seq,
        "event_id": event_id,
        "code": code,
        "divert": verdict == "reject",
    }


def encode(payload: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def console_line(
    station: str,
    scanner: str,
    verdict: str,
    reasons: Sequence[str],
    seq: int | None,
    raw: str,
    *,
    ascii_only: bool = False,
) -> str:
    """``✖ REJECT  dock1/hand1  ]C1…  unknown_gtin, lot_expired  seq=42`` (one line)."""
    marker = (ASCII_MARKERS if ascii_only else MARKERS).get(verdict, verdict.upper())
    shown = make_visible(raw)
    if len(shown) > RAW_SHOWN:
        shown = shown[: RAW_SHOWN - 3] + "..."
    if ascii_only:
        shown = shown.encode("ascii", "replace").decode()
    where = f"{station}/{scanner}" if scanner else station
    parts = [f"{marker:9}", where, shown or "-"]
    if reasons:
        parts.append(", ".join(reasons))
    if seq is not None:
        parts.append(f"seq={seq}")
    return "  ".join(parts)


def gpio_line(cfg: FeedbackConfig, verdict: str) -> int | None:
    """The line a verdict pulses (warn falls back to the good line)."""
    if verdict == "accept":
        return cfg.gpio_good
    if verdict == "warn":
        return cfg.gpio_warn if cfg.gpio_warn is not None else cfg.gpio_good
    if verdict == "reject":
        return cfg.gpio_bad
    return None


class PulseSchedule(Generic[K]):
    """When each pulsed output must go off again (pure; times are passed in)."""

    def __init__(self) -> None:
        self._until: dict[K, float] = {}
        self._heap: list[tuple[float, int, K]] = []
        self._n = 0

    def start(self, key: K, now: float, duration: float) -> bool:
        """Pulse ``key`` until ``now + duration``; True when it was off (switch it on)."""
        was_off = key not in self._until
        end = max(self._until.get(key, now), now + duration)
        self._until[key] = end
        self._n += 1
        heapq.heappush(self._heap, (end, self._n, key))
        return was_off

    def due(self, now: float) -> list[K]:
        """Keys whose pulse has ended by ``now`` (switch them off); they are forgotten."""
        out: list[K] = []
        while self._heap and self._heap[0][0] <= now:
            end, _, key = heapq.heappop(self._heap)
            if self._until.get(key) == end:
                del self._until[key]
                out.append(key)
        return out

    def next_deadline(self) -> float | None:
        """The earliest pending end, or None."""
        return min(self._until.values(), default=None)

    def active(self) -> tuple[K, ...]:
        """Keys currently on."""
        return tuple(self._until)


# -- GPIO --------------------------------------------------------------------------------------


class GpioOut(Protocol):
    """Drives output lines. ``chip`` ``""`` means the default chip."""

    def set(self, chip: str, line: int, on: bool) -> None: ...

    def close(self) -> None: ...


class RecordingGpio:
    """A GpioOut that records calls (tests, dry runs)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, bool]] = []
        self.state: dict[tuple[str, int], bool] = {}
        self.closed = False

    def set(self, chip: str, line: int, on: bool) -> None:
        self.calls.append((chip, line, on))
        self.state[(chip, line)] = on

    def close(self) -> None:
        self.closed = True


class GpiozeroOut:
    """GPIO through gpiozero ``DigitalOutputDevice`` (one per line, created on first use).

    A line that cannot be opened (no GPIO, busy, no permission) is logged once and
    skipped from then on.
    """

    def __init__(self) -> None:
        self._devices: dict[tuple[str, int], Any] = {}
        self._factories: dict[str, Any] = {}
        self._broken: set[tuple[str, int]] = set()

    def _factory(self, chip: str) -> Any:
        if chip == "":
            return None  # gpiozero's default (GPIOZERO_PIN_FACTORY or autodetect)
        if chip not in self._factories:
            from gpiozero.pins.lgpio import LGPIOFactory

            self._factories[chip] = LGPIOFactory(chip=int(chip.removeprefix("gpiochip")))
        return self._factories[chip]

    def set(self, chip: str, line: int, on: bool) -> None:
        key = (chip, line)
        if key in self._broken:
            return
        try:
            dev = self._devices.get(key)
            if dev is None:
                from gpiozero import DigitalOutputDevice

                dev = DigitalOutputDevice(line, pin_factory=self._factory(chip))
                self._devices[key] = dev
            if on:
                dev.on()
            else:
                dev.off()
        except Exception as e:
            self._broken.add(key)
            log.error("GPIO %s line %d unusable, feedback on it disabled: %s", chip or "-", line, e)

    def close(self) -> None:
        """Switch every line off and release it."""
        for dev in self._devices.values():
            try:
                dev.off()  # a line left on would keep a stack light lit
                dev.close()
            except Exception as e:
                log.debug("GPIO close: %s", e)
        self._devices.clear()
        for f in self._factories.values():
            try:
                f.close()
            except Exception as e:
                log.debug("GPIO factory close: %s", e)
        self._factories.clear()


def make_gpio(cfgs: Mapping[str, FeedbackConfig]) -> GpioOut | None:
    """A gpiozero-backed GpioOut if any station uses a GPIO line; None (logged once) when
    none does or gpiozero is not installed (``pip install traceway[gpio]``)."""
    used = [n for n, c in cfgs.items() if {c.gpio_good, c.gpio_bad, c.gpio_warn} != {None}]
    if not used:
        return None
    try:
        import gpiozero  # noqa: F401
    except ImportError:
        log.warning(
            "GPIO feedback disabled for %s: gpiozero is not installed (traceway[gpio])",
            ", ".join(sorted(used)),
        )
        return None
    return GpiozeroOut()


_STOP = object()
_SLICE = 0.5


class Pulser:
    """A thread that switches lines on at once and off after their pulse.

    ``pulse()`` never blocks (a queue put), so a slow GPIO backend cannot stall the caller.
    """

    def __init__(self, gpio: GpioOut, clock: Callable[[], float] = time.monotonic) -> None:
        self.gpio = gpio
        self._clock = clock
        self._q: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._schedule: PulseSchedule[tuple[str, int]] = PulseSchedule()
        self._thread = threading.Thread(target=self._run, name="feedback-gpio", daemon=True)
        self._thread.start()

    def pulse(self, chip: str, line: int, duration: float) -> None:
        """Switch ``line`` on for ``duration`` seconds (extends a running pulse)."""
        self._q.put((chip, line, duration))

    def stop(self, timeout: float = 2.0) -> None:
        """Switch every line off, close the backend, end the thread."""
        if self._thread.is_alive():
            self._q.put(_STOP)
            self._thread.join(timeout)

    def _set(self, key: tuple[str, int], on: bool) -> None:
        chip, line = key
        try:
            self.gpio.set(chip, line, on)
        except Exception:
            log.exception("GPIO set failed")

    def _run(self) -> None:
        while True:
            deadline = self._schedule.next_deadline()
            wait = _SLICE if deadline is None else max(0.0, deadline - self._clock())
            try:
                item = self._q.get(timeout=min(wait, _SLICE))
            except queue.Empty:
                item = None
            if item is _STOP:
                for key in self._schedule.active():
                    self._set(key, False)
                try:
                    self.gpio.close()
                except Exception:
                    log.exception("GPIO close failed")
                return
            if isinstance(item, tuple):
                chip, line, duration = item
                if self._schedule.start((chip, line), self._clock(), duration):
                    self._set((chip, line), True)
            for key in self._schedule.due(self._clock()):
                self._set(key, False)


# -- the shell --------------------------------------------------------------------------------


class Feedback:
    """Drives a station's configured outputs for each verdict. Never raises."""

    def __init__(
        self,
        station_cfgs: Mapping[str, FeedbackConfig],
        send_to_scanner: Callable[[str, bool], bool],
        publish: Callable[[str, bytes], None] | None,
        gpio: GpioOut | None,
        *,
        topic_root: str = "",
        out: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cfgs = dict(station_cfgs)
        self._beep = send_to_scanner
        self._publish = publish
        self._pulser = Pulser(gpio, clock) if gpio is not None else None
        self._root = topic_root
        self._out = out
        self.failures: dict[str, int] = {"serial": 0, "gpio": 0, "mqtt": 0, "console": 0}
        self._warned: set[str] = set()

    def close(self) -> None:
        """Switch GPIO lines off and stop the pulse thread."""
        if self._pulser is not None:
            self._pulser.stop()

    def on_outcome(self, o: Outcome, *, logged: bool = False) -> None:
        """:meth:`on_verdict` for a pipeline ``Outcome``."""
        self.on_verdict(
            o.station,
            o.scan.scanner,
            o.verdict,
            [r.code for r in o.reasons],
            o.seq,
            o.event_id,
            o.scan.text,
            logged=logged,
        )

    def on_verdict(
        self,
        station: str,
        scanner: str,
        verdict: str,
        reasons: Sequence[str],
        seq: int | None,
        event_id: str | None,
        raw: str,
        *,
        logged: bool = False,
    ) -> None:
        """Beep, pulse, publish and print as the station is configured (best effort each).

        ``logged``: the verdict is already in the log, so a reject that no output
        delivered is not printed a second time."""
        cfg = self.cfgs.get(station) or FeedbackConfig()
        told = False
        if cfg.serial_beep and scanner:
            told |= self._guard("serial", lambda: bool(self._beep(scanner, verdict != "reject")))
        line = gpio_line(cfg, verdict)
        if line is not None:
            told |= self._guard("gpio", lambda: self._gpio(cfg, line))
        if cfg.mqtt:
            msg = build_verdict(
                station=station,
                scanner=scanner,
                verdict=verdict,
                reasons=reasons,
                seq=seq,
                event_id=event_id,
                code=raw,
            )
            told |= self._guard("mqtt", lambda: self._mqtt(station, msg))
        if cfg.console or (verdict == "reject" and not told and not logged):
            args = (station, scanner, verdict, reasons, seq, raw)
            text, plain = console_line(*args), console_line(*args, ascii_only=True)
            self._guard("console", lambda: self._print(text, plain))

    # -- outputs --------------------------------------------------------------------------
    def _guard(self, what: str, fn: Callable[[], bool]) -> bool:
        try:
            return fn()
        except Exception:
            self.failures[what] += 1
            if what not in self._warned:
                self._warned.add(what)
                log.exception("%s feedback failed (reported once)", what)
            return False

    def _gpio(self, cfg: FeedbackConfig, line: int) -> bool:
        if self._pulser is None:
            self._once("gpio", "GPIO line configured but no GPIO backend: feedback not shown")
            return False
        self._pulser.pulse(cfg.gpio_chip, line, cfg.gpio_pulse)
        return True

    def _mqtt(self, station: str, msg: Mapping[str, Any]) -> bool:
        if self._publish is None or not self._root:
            self._once("mqtt", "MQTT verdicts configured but no publisher/topic root")
            return False
        self._publish(verdict_topic(self._root, station), encode(msg))
        return True

    def _print(self, text: str, ascii_text: str) -> bool:
        out = self._out if self._out is not None else sys.stdout
        try:
            print(text, file=out, flush=True)
        except UnicodeEncodeError:  # a console that cannot show ✔/✖
            print(ascii_text, file=out, flush=True)
        return True

    def _once(self, key: str, message: str) -> None:
        if f"cfg:{key}" not in self._warned:
            self._warned.add(f"cfg:{key}")
            log.warning("%s", message)
