"""Building the configured scanner readers (one thread each) from the config."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from drivers.scanners.config import ScannerConfig
from drivers.scanners.types import ScanSink, StatusSink

log = logging.getLogger(__name__)


class Reader(Protocol):
    """What the daemon needs from every reader."""

    def start(self) -> None: ...

    def stop(self, timeout: float = 2.0) -> None: ...


def make_reader(
    name: str,
    cfg: ScannerConfig,
    sink: ScanSink,
    on_status: StatusSink,
    *,
    state_dir: Path | None = None,
    station_view: Callable[[str], Any] | None = None,
) -> Any:
    """The reader for one scanner config (device modules are imported only when used).

    ``state_dir`` (the folder of the gateway's database) and ``station_view`` (committed
    step/location/QTY of a station) are used by phone scanners only.
    """
    if cfg.type == "phone":
        from drivers.scanners.phone.server import PhoneReader

        return PhoneReader(
            name,
            cfg,
            sink,
            on_status,
            state_dir=state_dir if state_dir is not None else Path("."),
            station_view=station_view,
        )
    if cfg.type == "replay":
        from drivers.scanners.replay_reader import ReplayReader

        return ReplayReader(name, cfg, sink, on_status)
    if cfg.type == "serial":
        from drivers.scanners.serial_reader import SerialReader

        return SerialReader(name, cfg, sink, on_status)
    if cfg.type == "tcp" and cfg.mode == "listen":
        from drivers.scanners.tcp_listener import TcpListener

        return TcpListener(name, cfg, sink, on_status)
    if cfg.type == "tcp":
        from drivers.scanners.tcp_reader import TcpReader

        return TcpReader(name, cfg, sink, on_status)
    if cfg.type == "evdev":
        from drivers.scanners.evdev_reader import EvdevReader

        return EvdevReader(name, cfg, sink, on_status)
    if cfg.type == "hidpos":
        from drivers.scanners.hidpos_reader import HidPosReader

        return HidPosReader(name, cfg, sink, on_status)
    raise ValueError(f"unknown scanner type {cfg.type!r}")
