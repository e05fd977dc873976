"""The gateway daemon: wires readers → writer → publisher and runs until told to stop."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from drivers.scanners.types import DeviceStatus, RawScan
from gateway import __version__
from gateway.cache_import import cache_is_empty, import_csv
from gateway.clock import ClockStatus
from gateway.config import GatewayConfig, config_hash
from gateway.pipeline import Outcome, ScanProcessor
from gateway.publisher import Publisher, StatusMessage
from gateway.readers import make_reader
from gateway.store.db import open_database
from gateway.store.hot import Checkpointer, HotStore
from gateway.writer import Task, Writer
from mqtt_topics.topics import GatewayTopics

log = logging.getLogger("traceway")
scan_log = logging.getLogger("traceway.scan")


@dataclass
class Counters:
    """Scan counts by verdict, for status and metrics."""

    by_verdict: dict[str, int] = field(
        default_factory=lambda: {"accept": 0, "warn": 0, "reject": 0}
    )
    storage_failures: int = 0


class Gateway:
    """One running gateway: database, writer, publisher, readers."""

    def __init__(self, cfg: GatewayConfig, config_path: Path | None = None) -> None:
        self.cfg = cfg
        self.config_path = config_path
        self.config_hash = config_hash(config_path) if config_path else ""
        self.topics = GatewayTopics(cfg.gateway.site, cfg.gateway.id, cfg.broker.topic_prefix)
        self.clock = ClockStatus()
        self.counters = Counters()
        self.storage_down_since: float | None = None
        self.storage_rejected = 0
        self.readers: dict[str, Any] = {}
        self.stopped = threading.Event()
        self.boot = 0
        self.started_at = datetime.now().astimezone()
        self.engine = open_database(cfg.storage.path, cfg.storage.synchronous)
        self._seed_cache()
        self.boot = self._bump_boot()
        self.processor = ScanProcessor(cfg, self.clock.synced)
        self.writer = Writer(
            cfg.storage.path,
            self.processor,
            synchronous=cfg.storage.synchronous,
            max_group=cfg.storage.max_group,
            max_size_mb=cfg.storage.max_size_mb,
            on_committed=self._committed,
            on_failed=self._failed,
        )
        self.checkpointer = Checkpointer(cfg.storage.path)
        self.device_states: dict[str, DeviceStatus] = {}
        self._device_lock = threading.Lock()
        self.print_workers = self._make_print_workers()
        self.watcher: Any = None
        self.publisher: Publisher | None = None
        if cfg.broker.enabled:
            self.publisher = Publisher(
                cfg.broker,
                cfg.client_id,
                cfg.storage.path,
                self._mark_published,
                birth=self._birth,
                will=self._status_message("offline"),
                on_connected=self._republish_devices,
            )

    def _make_print_workers(self) -> dict[str, Any]:
        if not self.cfg.printers:
            return {}
        from drivers.printers.printer import printer_for
        from drivers.printers.templates import load_templates
        from gateway.print_queue import PrintWorker

        workers: dict[str, Any] = {}
        for name, pc in self.cfg.printers.items():
            extra = [pc.labels_dir] if pc.labels_dir else []
            workers[name] = PrintWorker(
                name,
                printer_for(pc),
                self.engine,
                self._device_status,
                templates=load_templates(extra),
                confirm_timeout=pc.confirm_timeout,
                status_interval=pc.status_interval,
            )
        return workers

    # -- set-up -----------------------------------------------------------------------------
    def _seed_cache(self) -> None:
        c = self.cfg.cache
        if not (c.seed_products or c.seed_lots or c.seed_serials):
            return
        if not cache_is_empty(self.engine):
            return
        counts = import_csv(self.engine, c.seed_products, c.seed_lots, c.seed_serials)
        log.info(
            "cache seeded: %d products, %d lots, %d serials",
            counts.products,
            counts.lots,
            counts.serials,
        )

    def _bump_boot(self) -> int:
        from sqlalchemy import select
        from sqlalchemy.dialects.sqlite import insert

        from gateway.store.schema import meta

        with self.engine.begin() as conn:
            cur = conn.execute(select(meta.c.value).where(meta.c.key == "boot_counter")).scalar()
            boot = int(cur or 0) + 1
            stmt = insert(meta).values(key="boot_counter", value=str(boot))
            conn.execute(
                stmt.on_conflict_do_update(index_elements=[meta.c.key], set_={"value": str(boot)})
            )
        return boot

    def _status_message(self, state: str, reason: str = "connection_lost") -> StatusMessage:
        from datetime import datetime

        from mqtt_topics.status import build_birth, build_offline

        now = datetime.now().astimezone()
        if state == "online":
            payload = build_birth(
                gateway_id=self.cfg.gateway.id,
                site=self.cfg.gateway.site,
                time=now,
                boot=self.boot,
                version=__version__,
                config_hash=self.config_hash,
                cache_version=self._cache_version(),
                clock_synced=self.clock.synced(),
                started_at=self.started_at,
            )
        else:
            payload = build_offline(
                gateway_id=self.cfg.gateway.id,
                site=self.cfg.gateway.site,
                time=now,
                boot=self.boot,
                reason="shutdown" if reason == "shutdown" else "connection_lost",
            )
        return StatusMessage(self.topics.status, payload)

    def _birth(self) -> StatusMessage:
        return self._status_message("online")

    def _cache_version(self) -> int:
        from sqlalchemy import select

        from gateway.store.schema import meta

        with self.engine.connect() as conn:
            v = conn.execute(select(meta.c.value).where(meta.c.key == "cache_version")).scalar()
        return int(v or 0)

    # -- callbacks ------------------------------------------------------------------------
    def submit(self, scan: RawScan) -> None:
        """The sink every reader hands complete scans to (never blocks)."""
        self.writer.submit(scan)

    def _mark_published(self, seqs: list[int]) -> None:
        now = time.time()

        def mark(store: HotStore) -> None:
            store.mark_published(seqs, now)
            if self.processor.outbox_alarm:
                self.processor.check_outbox(store)

        self.writer.submit(Task(mark))

    def _committed(self, outcomes: list[Outcome]) -> None:
        if self.storage_down_since is not None:
            self._storage_recovered()
        for o in outcomes:
            self.counters.by_verdict[o.verdict] = self.counters.by_verdict.get(o.verdict, 0) + 1
            level = logging.INFO if o.verdict != "reject" else logging.WARNING
            scan_log.log(level, "%s", o.line())
        if self.publisher is not None:
            self.publisher.wake()
        for printer in {o.print_job for o in outcomes if o.print_job}:
            worker = self.print_workers.get(printer)
            if worker is not None:
                worker.wake()

    def _failed(self, scans: list[RawScan], why: str) -> None:
        """The database refused the group (disk full, I/O error): nothing was written."""
        self.counters.storage_failures += len(scans)
        if self.storage_down_since is None:
            self.storage_down_since = time.time()
            log.critical("storage failure: %s — scans are rejected until it is fixed", why)
        self.storage_rejected += len(scans)
        for s in scans:
            scan_log.error(
                "REJECT %s storage_error: scan not recorded (%s) from %s",
                self.processor.station_of(s),
                why,
                s.scanner,
            )

    def _storage_recovered(self) -> None:
        """First commit after a storage failure: record what was lost as an alert."""
        since, count = self.storage_down_since, self.storage_rejected
        self.storage_down_since, self.storage_rejected = None, 0
        assert since is not None
        station = next(iter(self.cfg.stations))
        message = (
            f"storage was full or failing from {datetime.fromtimestamp(since).astimezone():%H:%M:%S}"
            f" until now; {count} scan(s) were rejected and not recorded"
        )
        log.warning("%s", message)
        self.writer.submit(
            Task(
                lambda store: self.processor.alert(
                    store, station=station, alert="disk_full", severity="critical", message=message
                )
            )
        )

    def _device_status(self, st: DeviceStatus) -> None:
        """A reader or printer changed state: log it and publish it (retained per device)."""
        with self._device_lock:
            previous = self.device_states.get(st.device)
            self.device_states[st.device] = st
        if previous is not None and previous.state == st.state and previous.detail == st.detail:
            return
        level = logging.INFO if st.state in ("connected", "alive", "ready") else logging.WARNING
        log.log(level, "%s %s: %s %s", st.kind, st.device, st.state, st.detail)
        self._publish_device(st, previous.state if previous else None)

    def _publish_device(self, st: DeviceStatus, previous: str | None) -> None:
        if self.publisher is None:
            return
        from mqtt_topics.status import build_device_status

        payload = build_device_status(
            gateway_id=self.cfg.gateway.id,
            site=self.cfg.gateway.site,
            time=datetime.now().astimezone(),
            device=st.device,
            kind="printer" if st.kind == "printer" else "scanner",
            state=st.state,
            previous=previous,
            detail=st.detail[:200],
            last_seen=datetime.fromtimestamp(st.at).astimezone() if st.at else None,
        )
        self.publisher.publish_direct(self.topics.device(st.device), payload, retain=True)

    def _republish_devices(self) -> None:
        with self._device_lock:
            states = list(self.device_states.values())
        for st in states:
            self._publish_device(st, None)

    # -- life cycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Start writer, publisher and readers."""
        # Hand the GIL over sooner than the default 5 ms: readers and the writer are
        # latency-sensitive (an evdev client's ring holds only ~64 events).
        sys.setswitchinterval(0.001)
        self.writer.start()
        self.checkpointer.start()
        if self.publisher is not None:
            self.publisher.start()
        for worker in self.print_workers.values():
            worker.start()
        for name, sc in self.cfg.scanners.items():
            if not sc.enabled:
                continue
            reader = make_reader(name, sc, self.submit, self._device_status)
            reader.start()
            self.readers[name] = reader
        self._start_hotplug()
        log.info(
            "traceway %s running: site %s gateway %s, %d scanner(s), state in %s",
            __version__,
            self.cfg.gateway.site,
            self.cfg.gateway.id,
            len(self.readers),
            self.cfg.storage.path,
        )

    def _start_hotplug(self) -> None:
        """Reopen unplugged devices as soon as udev says they are back (pyudev, optional)."""
        hot = [r for r in self.readers.values() if hasattr(r, "hotplug")]
        if not hot:
            return
        try:
            from drivers.scanners.hotplug import DeviceWatcher
        except ImportError:
            return
        self.watcher = DeviceWatcher()
        for r in hot:
            self.watcher.add_listener(r.hotplug)
        if not self.watcher.start():
            log.info("udev monitor unavailable; unplugged scanners are retried with backoff")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop readers, drain the writer, publish offline, close."""
        deadline = time.monotonic() + timeout
        if self.watcher is not None:
            self.watcher.stop()
        for reader in self.readers.values():
            try:
                reader.stop(1.0)
            except Exception:
                log.exception("stopping a reader failed")
        self.writer.stop(max(1.0, deadline - time.monotonic() - 2))
        self.checkpointer.stop()
        for worker in self.print_workers.values():
            worker.stop(2.0)
        if self.publisher is not None:
            self.publisher.stop(
                self._status_message("offline", "shutdown"), max(0.5, deadline - time.monotonic())
            )
        self.engine.dispose()
        self.stopped.set()

    def replay_finished(self) -> bool:
        """True when every replay reader has reached the end of its file."""
        replays = [r for r in self.readers.values() if hasattr(r, "finished")]
        return bool(replays) and all(r.finished.is_set() for r in replays)

    def outbox_depth(self) -> int:
        return int(self.writer.call(lambda s: s.outbox_depth()))

    def healthy(self) -> bool:
        """Writer and publisher alive AND making progress (for the systemd watchdog)."""
        now = time.monotonic()
        ok = self.writer.alive and (
            self.writer.backlog() == 0 or now - self.writer.last_progress < 30
        )
        if self.publisher is not None:
            ok = ok and self.publisher.alive and now - self.publisher.last_progress < 10
        return ok


def run_gateway(
    cfg: GatewayConfig,
    config_path: Path | None,
    *,
    exit_after_replay: bool = False,
    drain_timeout: float = 5.0,
) -> int:
    """Run until SIGTERM/SIGINT (or, with ``exit_after_replay``, until replays are done)."""
    gw = Gateway(cfg, config_path)
    stop = threading.Event()

    def _signal(signum: int, _frame: Any) -> None:
        log.info("signal %s: stopping", signal.Signals(signum).name)
        stop.set()

    old = {s: signal.signal(s, _signal) for s in (signal.SIGTERM, signal.SIGINT)}
    watchdog = None
    try:
        gw.start()
        try:
            from gateway.service import Watchdog, ready

            ready()
            watchdog = Watchdog(gw.healthy)
            watchdog.start()
        except ImportError:
            pass
        while not stop.wait(0.2):
            if exit_after_replay and gw.replay_finished() and gw.writer.backlog() == 0:
                _drain(gw, drain_timeout)
                break
    finally:
        if watchdog is not None:
            watchdog.stop()
        gw.stop()
        for s, h in old.items():
            signal.signal(s, h)
    depth = _final_depth(cfg)
    log.info("stopped; %d event(s) waiting in the outbox", depth)
    return 0


def _drain(gw: Gateway, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gw.publisher is None or not gw.publisher.connected:
            return
        if gw.outbox_depth() == 0:
            return
        time.sleep(0.1)


def _final_depth(cfg: GatewayConfig) -> int:
    from gateway.store.hot import connect

    conn = connect(cfg.storage.path, cfg.storage.synchronous)
    try:
        return HotStore(conn).outbox_depth()
    finally:
        conn.close()
