"""The gateway daemon: wires readers → writer → publisher and runs until told to stop."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import queue
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from datetime import datetime
from pathlib import Path
from typing import Any

from drivers.scanners.phone.protocol import StationView
from drivers.scanners.types import DeviceStatus, RawScan
from gateway import __version__
from gateway.clock import ClockStatus
from gateway.config import GatewayConfig, config_hash, load_config
from gateway.config_files import seed_error
from gateway.expiry_check import ExpiryCheck
from gateway.feedback import Feedback, make_gpio
from gateway.logsetup import line_handler
from gateway.metrics import (
    DeviceBoard,
    Figures,
    MetricsLoop,
    ScanCounters,
    outbox_figures,
    printer_state,
    scanner_state,
    start_prometheus,
)
from gateway.mqtt.publisher import Publisher, StatusMessage
from gateway.mqtt.publisher_process import RemotePublisher
from gateway.outcome import Outcome
from gateway.pipeline import ScanProcessor
from gateway.readers import make_reader
from gateway.retention import PRUNE_CHUNK, PruneSchedule
from gateway.rules.gates import Gate, GateAssembler, GateWorker, NoReadStats
from gateway.store.cache_import import ImportError_, cache_is_empty, import_csv
from gateway.store.db import open_database
from gateway.store.hot import Checkpointer, HotStore
from gateway.writer import Task, Writer
from mqtt_topics.topics import GatewayTopics

log = logging.getLogger("traceway")
_PRINTER_PROBLEMS = ("paper out", "ribbon out", "head open", "paused")
scan_log = logging.getLogger("traceway.scan")


class Gateway:
    """One running gateway: database, writer, publisher, readers."""

    def __init__(self, cfg: GatewayConfig, config_path: Path | None = None) -> None:
        self.cfg = cfg
        self.config_path = config_path
        self.config_hash = config_hash(config_path, cfg)
        self.topics = GatewayTopics(cfg.gateway.site, cfg.gateway.id, cfg.broker.topic_prefix)
        self.clock = ClockStatus()
        self.storage_down_since: float | None = None
        self.storage_rejected = 0
        self.readers: dict[str, Any] = {}
        self.stopped = threading.Event()
        self.boot = 0
        self.started_at = datetime.now().astimezone()
        self.engine = open_database(cfg.storage.path, cfg.storage.synchronous)
        self._load_refusals()
        self._seed_cache()
        self.boot = self._bump_boot()
        self.processor = ScanProcessor(cfg, self.clock.synced)
        #: station states as of the last commit (what phones show; never an uncommitted one)
        self.committed_stations = dict(self.processor.stations)
        self.writer = Writer(
            cfg.storage.path,
            self.processor,
            synchronous=cfg.storage.synchronous,
            max_group=cfg.storage.max_group,
            max_size_mb=cfg.storage.max_size_mb,
            on_committed=self._committed,
            on_failed=self._failed,
            on_rows=self._rows_committed,
            commit_delay=cfg.storage.commit_delay_ms / 1000,
        )
        self.checkpointer = Checkpointer(cfg.storage.path)
        self.device_states: dict[str, DeviceStatus] = {}
        self._device_lock = threading.Lock()
        self.print_workers = self._make_print_workers()
        self.watcher: Any = None
        self.scan_counters = ScanCounters()
        self.devices = DeviceBoard(self.topics)
        self._device_payloads: dict[str, dict[str, Any]] = {}
        self.gate_stats = NoReadStats()
        self._reports: queue.SimpleQueue[list[Outcome] | None] = queue.SimpleQueue()
        self._reporter = threading.Thread(target=self._report, name="reporter", daemon=True)
        self.gates = self._make_gates()
        fb = {n: s.feedback for n, s in cfg.stations.items()}
        self.feedback = Feedback(
            fb, self._beep, self._publish_verdict, make_gpio(fb), topic_root=self.topics.root
        )
        self.publisher: Publisher | RemotePublisher | None = None
        self.cache_sync: Any = None
        self.commands: Any = None
        self.metrics_loop: MetricsLoop | None = None
        self.expiry_check: ExpiryCheck | None = None
        if cfg.storage.expiry_check_interval > 0:
            self.expiry_check = ExpiryCheck(
                cfg.storage.expiry_check_interval,
                self.writer.submit,
                self.processor,
                next(iter(cfg.stations)),  # as disk_full: the gateway's first station
                cfg.storage.path,
            )
        self.prometheus: Any = None
        if cfg.broker.enabled:
            publisher_class = RemotePublisher if cfg.broker.separate_process else Publisher
            self.publisher = publisher_class(
                cfg.broker,
                cfg.client_id,
                cfg.storage.path,
                self._mark_published,
                birth=self._birth,
                will=self._status_message("offline"),
                subscriptions=[(t, 1) for t in self._subscriptions()],
                on_message=self._on_message,
                on_connected=self._on_connected,
            )
            from gateway.mqtt.commands import CommandHandler, paho_sender
            from gateway.store.cache_sync import CacheSync, publish_json

            pub = publish_json(self.publisher.client)
            self.cache_sync = CacheSync(
                topics=self.topics, run_in_writer=self.writer.call, publish=pub
            )
            self.commands = CommandHandler(self.topics, self, paho_sender(self.publisher.client))
            self.metrics_loop = MetricsLoop(self.topics, self.figures, pub, cfg.metrics.interval)

    def _make_reader(self, name: str, sc: Any) -> Any:
        return make_reader(
            name,
            sc,
            self.submit,
            self._device_status,
            state_dir=self.cfg.storage.path.parent,
            station_view=self.station_view,
        )

    def station_view(self, station: str) -> StationView | None:
        """A station's committed step, location and pending QTY (for phone pages)."""
        st = self.committed_stations.get(station)
        if st is None:
            return None
        return StationView(station, st.step, st.location, st.next_quantity)

    def _tell_phone(
        self,
        scan: RawScan,
        station: str,
        verdict: str,
        reasons: list[tuple[str, str]],
        summary: str,
        seq: int | None,
    ) -> None:
        """A phone's scan has its verdict (committed, or refused): answer on its socket."""
        if "." not in scan.scanner:
            return
        reader = self.readers.get(scan.scanner.rsplit(".", 1)[0])
        on_verdict = getattr(reader, "on_verdict", None)
        if on_verdict is None:
            return
        try:
            on_verdict(scan.frame_id, verdict, reasons, summary, seq, self.station_view(station))
        except Exception:
            log.exception("telling phone %s its verdict failed", scan.scanner)

    def _subscriptions(self) -> list[str]:
        subs = self.topics.subscriptions()
        return [t if isinstance(t, str) else t[0] for t in subs]

    def _make_gates(self) -> GateWorker | None:
        gated = {n: s.gate for n, s in self.cfg.stations.items() if s.gate.enabled}
        if not gated:
            return None
        assemblers = {
            n: GateAssembler(
                n,
                g,
                [k for k, sc in self.cfg.scanners.items() if sc.station == n and sc.enabled],
            )
            for n, g in gated.items()
        }
        return GateWorker(assemblers, self._gate_closed)

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
                write=self._print_write,
            )
        return workers

    def _print_write(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Print-job state changes run in the single writer, never beside it."""
        return self.writer.call(lambda store: fn(store.conn))

    # -- set-up -----------------------------------------------------------------------------
    def _seed_cache(self) -> None:
        c = self.cfg.cache
        if not (c.seed_products or c.seed_lots or c.seed_serials):
            return
        if not cache_is_empty(self.engine):
            return
        try:
            counts = import_csv(self.engine, c.seed_products, c.seed_lots, c.seed_serials)
        except ImportError_ as exc:  # one line naming the config key, not a traceback
            self.engine.dispose()
            raise seed_error(self.config_path, c, exc.problems, exc.total) from None
        log.info(
            "cache seeded: %d products, %d lots, %d serials, %d untracked stock rows",
            counts.products,
            counts.lots,
            counts.serials,
            counts.items,
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

    def _cache_version(self) -> int | None:
        from sqlalchemy import select

        from gateway.store.schema import meta

        with self.engine.connect() as conn:
            v = conn.execute(select(meta.c.value).where(meta.c.key == "cache_version")).scalar()
        return int(v) if v is not None else None

    # -- callbacks ------------------------------------------------------------------------
    def submit(self, scan: RawScan) -> None:
        """The sink every reader hands complete scans to (never blocks)."""
        if self.gates is not None:
            station = self.processor.station_of(scan)
            if self.cfg.stations[station].gate.enabled:
                self.gates.submit(station, scan)
                return
        self.writer.submit(scan)

    def _gate_closed(self, gate: Gate) -> None:
        self.gate_stats.record(gate)
        self.writer.submit(gate)

    def _beep(self, scanner: str, ok: bool) -> bool:
        beep = getattr(self.readers.get(scanner), "beep", None)
        return bool(beep(ok)) if beep is not None else False

    def _publish_verdict(self, topic: str, data: bytes) -> None:
        # QoS 0 with a short expiry: a late diverter signal is worse than none
        if self.publisher is None or not self.publisher.connected:
            return
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.MessageExpiryInterval = 5
        self.publisher.client.publish(topic, data, qos=0, retain=False, properties=props)

    def _on_message(self, msg: Any) -> None:
        if msg.topic == self.topics.commands:
            if self.commands is not None:
                self.commands.on_message(msg)
        elif self.cache_sync is not None:
            self.cache_sync.on_message(msg.topic, bytes(msg.payload))

    def _on_connected(self) -> None:
        self._republish_devices()
        if self.cache_sync is not None:
            threading.Thread(target=self._announce, name="cache-announce", daemon=True).start()

    def _announce(self) -> None:
        """Report the cache version held; a busy or stopped writer only delays that to the
        next connection (the central side asks again too)."""
        assert self.cache_sync is not None
        try:
            self.cache_sync.announce()
        except Exception as exc:  # a thread of its own: say it, never die with a traceback
            why = str(exc) or type(exc).__name__
            log.warning("cache version not announced (%s); again at the next connection", why)

    def figures(self) -> Figures:
        """Current counters and gauges for metrics and Prometheus."""
        scans, no_reads = self.scan_counters.totals()
        depth, age = outbox_figures(self.cfg.storage.path)
        lat = list(self.publisher.stats.latencies) if self.publisher is not None else []
        return Figures(
            scans, no_reads, depth, age, lat, self.devices.printers(), self.devices.scanners()
        )

    def _rows_committed(self, rows: list[tuple[int, str, str]]) -> None:
        if self.publisher is not None:
            self.publisher.feed(rows)

    def _mark_published(self, seqs: list[int]) -> None:
        now = time.time()

        def mark(store: HotStore) -> None:
            store.mark_published(seqs, now)
            if self.processor.outbox_alarm:
                self.processor.check_outbox(store)

        self.writer.defer(mark)  # rides along with the next scan's transaction

    def _committed(self, outcomes: list[Outcome]) -> None:
        """Runs in the writer thread after a commit: only wake-ups and a hand-off here."""
        self.committed_stations = dict(self.processor.stations)
        if self.storage_down_since is not None:
            self._storage_recovered()
        # the publisher was handed the committed rows already (``on_rows``)
        for printer in {o.print_job for o in outcomes if o.print_job}:
            worker = self.print_workers.get(printer)
            if worker is not None:
                worker.wake()
        self._reports.put(outcomes)

    def _report(self) -> None:
        """The reporter thread: log lines, operator feedback, counters — off the writer, so a
        slow journal or console never holds up the next commit."""
        while True:
            outcomes = self._reports.get()
            if outcomes is None:
                return
            self.scan_counters.note(outcomes)
            batch = line_handler(scan_log)  # one write for the commit's lines, when it can
            lines: list[tuple[int, str]] = []
            for scanner in {o.scan.scanner for o in outcomes if o.scan.scanner}:
                self.devices.seen(scanner)  # last seen: now, once per device and commit
            for o in outcomes:
                level = logging.INFO if o.verdict != "reject" else logging.WARNING
                logged = scan_log.isEnabledFor(level)
                if logged and batch is not None:
                    lines.append((level, o.line()))
                elif logged:
                    scan_log.log(level, "%s", o.line())
                self.feedback.on_outcome(o, logged=logged)
                if "." in o.scan.scanner:
                    reasons = [(r.code, r.message) for r in o.reasons]
                    self._tell_phone(o.scan, o.station, o.verdict, reasons, o.summary, o.seq)
            if batch is not None and lines:
                batch.emit_lines(lines, time.time())

    def _failed(self, scans: list[RawScan], why: str) -> None:
        """The database refused the group (disk full, I/O error): nothing was written."""
        if self.storage_down_since is None:
            self.storage_down_since = time.time()
            log.critical("storage failure: %s — scans are rejected until it is fixed", why)
        self.storage_rejected += len(scans)
        self._remember_refusals()
        logged = scan_log.isEnabledFor(logging.ERROR)
        for s in scans:
            station = self.processor.station_of(s)
            scan_log.error(
                "REJECT %s storage_error: scan not recorded (%s) from %s", station, why, s.scanner
            )
            self.feedback.on_verdict(
                station, s.scanner, "reject", ["storage_error"], None, None, s.text, logged=logged
            )
            why_words = f"the gateway's storage failed ({why}); scan not recorded"
            self._tell_phone(
                s, station, "reject", [("storage_error", why_words)], "not recorded", None
            )

    @property
    def _refusals_file(self) -> Path:
        return self.cfg.storage.path.with_name(self.cfg.storage.path.name + ".refused")

    def _remember_refusals(self) -> None:
        """Keep the refusal count outside the database, so a restart does not forget it."""
        import json

        with contextlib.suppress(OSError):  # a truly full disk: the count stays in memory
            self._refusals_file.write_text(
                json.dumps({"since": self.storage_down_since, "count": self.storage_rejected})
            )

    def _load_refusals(self) -> None:
        import json

        try:
            data = json.loads(self._refusals_file.read_text())
            self.storage_down_since = float(data["since"])
            self.storage_rejected = int(data["count"])
        except (OSError, ValueError, KeyError, TypeError):
            return

    def _storage_recovered(self) -> None:
        """First commit after a storage failure: record what was lost as an alert.

        The refusal count is forgotten only once the alert itself is committed: a disk
        that is nearly full can refuse that transaction too.
        """
        since, count = self.storage_down_since, self.storage_rejected
        assert since is not None
        self.storage_down_since, self.storage_rejected = None, 0
        station = next(iter(self.cfg.stations))
        message = (
            f"storage was full or failing from {datetime.fromtimestamp(since).astimezone():%H:%M:%S}"
            f" until now; {count} scan(s) were rejected and not recorded"
        )
        log.warning("%s", message)
        fut: Future[Any] = Future()

        def done(f: Future[Any]) -> None:
            if f.exception() is None:
                with contextlib.suppress(OSError):
                    self._refusals_file.unlink(missing_ok=True)
                return
            # not recorded: put the count back (plus anything refused meanwhile)
            self.storage_down_since = min(since, self.storage_down_since or since)
            self.storage_rejected += count
            self._remember_refusals()

        fut.add_done_callback(done)
        self.writer.submit(
            Task(
                lambda store: self.processor.alert(
                    store, station=station, alert="disk_full", severity="critical", message=message
                ),
                fut,
            )
        )

    def prune_once(self) -> Future[bool]:
        """Delete a chunk of published events older than ``storage.keep_published_hours``
        and of history older than ``storage.history_days`` (bounded disk), in the writer.
        The future is True when a chunk came back full (more may be waiting)."""
        now = time.time()
        cutoff = now - self.cfg.storage.keep_published_hours * 3600
        history_cutoff = now - self.cfg.storage.history_days * 86400
        fut: Future[bool] = Future()
        self.writer.submit(
            Task(lambda store: store.prune(cutoff, history_cutoff, PRUNE_CHUNK), fut, durable=False)
        )
        return fut

    def _device_status(self, st: DeviceStatus) -> None:
        """A reader or printer changed state: log it, publish it (retained), alarm if needed."""
        with self._device_lock:
            previous = self.device_states.get(st.device)
            self.device_states[st.device] = st
        if previous is not None and previous.state == st.state and previous.detail == st.detail:
            return
        routine = st.expected or st.state in ("connected", "alive", "ready")
        level = logging.INFO if routine else logging.WARNING
        log.log(level, "%s %s: %s %s", st.kind, st.device, st.state, st.detail)
        if st.kind == "printer":
            problems = [p for p in _PRINTER_PROBLEMS if p in st.detail.lower()]
            pstate = {"connected": "ready", "disconnected": "offline"}.get(st.state, "held")
            state = printer_state(pstate, problems)
        else:
            state = scanner_state(st.state)
        at = datetime.fromtimestamp(st.at).astimezone() if st.at else None
        res = self.devices.update(st.device, st.kind, state, st.detail[:200], at)
        if res is not None:
            topic, payload = res
            with self._device_lock:
                self._device_payloads[topic] = payload
            if self.publisher is not None:
                self.publisher.publish_direct(topic, payload, retain=True)
        if st.state == "heartbeat_lost":
            station = self.cfg.scanners[st.device].station if st.device in self.cfg.scanners else ""
            self.writer.submit(
                Task(
                    lambda store: self.processor.alert(
                        store,
                        station=station or next(iter(self.cfg.stations)),
                        alert="heartbeat_lost",
                        severity="error",
                        message=f"scanner {st.device}: no heartbeat ({st.detail})",
                        extra={"device": st.device},
                    )
                )
            )

    def _republish_devices(self) -> None:
        with self._device_lock:
            payloads = list(self._device_payloads.items())
        if self.publisher is not None:
            for topic, payload in payloads:
                self.publisher.publish_direct(topic, payload, retain=True)

    # -- GatewayControl (MQTT commands) -------------------------------------------------------
    def set_station_step(self, station: str, step: str) -> None:
        """Switch a station's business step (runs in the writer, between scans)."""
        from dataclasses import replace

        from gateway.mqtt.commands import CommandRejected

        if station not in self.processor.stations:
            raise CommandRejected(f"unknown station {station!r}")

        def change(_store: HotStore) -> None:
            st = self.processor.stations[station]
            self.processor.stations[station] = replace(st, step=step)
            self.processor.duplicates.forget_station(station)

        self.writer.call(change)
        self.committed_stations = dict(self.processor.stations)
        log.info("station %s: step is now %s (command)", station, step)

    def set_transaction(self, station: str, transactions: list[tuple[str, str]]) -> None:
        """Set (or, with an empty list, clear) a station's business transaction reference."""
        from dataclasses import replace

        from gateway.mqtt.commands import CommandRejected

        if station not in self.processor.stations:
            raise CommandRejected(f"unknown station {station!r}")
        tx: tuple[tuple[str, str], ...] = ()
        for kind, ref in transactions:  # one per type; a later one of a type replaces it
            tx = (*(t for t in tx if t[0] != kind), (kind, ref))

        def change(_store: HotStore) -> None:
            self.processor.stations[station] = replace(
                self.processor.stations[station], transactions=tx
            )

        self.writer.call(change)
        self.committed_stations = dict(self.processor.stations)
        log.info("station %s: transactions %s (command)", station, list(tx) or "cleared")

    def print_label(
        self,
        printer: str | None,
        template: str,
        fields: Any,
        copies: int,
        idempotency_key: str,
    ) -> int:
        """Queue a label through the durable print queue; returns the first job id."""
        from gateway.mqtt.commands import CommandRejected
        from gateway.print_queue import new_job_row

        name = printer or next(iter(self.cfg.printers), None)
        if name is None or name not in self.cfg.printers:
            raise CommandRejected(f"unknown printer {printer!r}")

        def enqueue(store: HotStore) -> int:
            first = 0
            for n in range(copies):
                key = idempotency_key if n == 0 else f"{idempotency_key}#{n + 1}"
                row = new_job_row(
                    idempotency_key=key,
                    printer=name,
                    template=template,
                    fields={k: str(v) for k, v in fields.items()},
                    event_id=None,
                    now=time.time(),
                )
                store.insert_print_job(row)
                job = store.conn.execute(
                    "SELECT id FROM print_jobs WHERE idempotency_key = ?", (key,)
                ).fetchone()
                first = first or int(job[0])
            return first

        job_id = int(self.writer.call(enqueue))
        worker = self.print_workers.get(name)
        if worker is not None:
            worker.wake()
        return job_id

    def reprint(
        self, job_id: str | None, event_id: str | None, printer: str | None, copies: int
    ) -> int:
        """Queue a reprint (a new job marked as one) of a job, or of an event's label."""
        from gateway.mqtt.commands import CommandRejected
        from gateway.print_queue import reprint_sqlite

        def queue(store: HotStore) -> int:
            jid = job_id
            if jid is None and event_id is not None:
                row = store.conn.execute(
                    "SELECT id FROM print_jobs WHERE event_id = ? ORDER BY id LIMIT 1", (event_id,)
                ).fetchone()
                if row is None:
                    raise CommandRejected(f"no label job for event {event_id}")
                jid = str(row[0])
            if jid is None:
                raise CommandRejected("give job_id or event_id")
            try:
                new = 0
                for _ in range(copies):
                    new = new or reprint_sqlite(store.conn, int(jid), time.time())
            except (KeyError, ValueError) as exc:
                raise CommandRejected(str(exc).strip("'\"")) from exc
            return new

        new = int(self.writer.call(queue))
        for worker in self.print_workers.values():
            worker.wake()
        return new

    def resync_cache(self, reason: str) -> str:
        """Ask the central side for a fresh snapshot."""
        if self.cache_sync is None:
            raise RuntimeError("no broker configured")
        return str(self.cache_sync.request_resync("command"))

    def reload_config(self) -> list[str]:
        """Re-read the config file and restart only what changed."""
        from gateway.mqtt.commands import CommandRejected

        if self.config_path is None:
            raise CommandRejected("the gateway was not started from a config file")
        try:
            new = load_config(self.config_path)
        except Exception as exc:
            raise CommandRejected(str(exc)) from exc
        changed: list[str] = []
        needs_restart = [
            k for k in ("gateway", "broker", "storage") if getattr(new, k) != getattr(self.cfg, k)
        ]
        if needs_restart:
            raise CommandRejected(
                f"{', '.join(needs_restart)} changed: restart the service to apply"
            )
        for name in set(self.cfg.scanners) | set(new.scanners):
            if self.cfg.scanners.get(name) != new.scanners.get(name):
                old_reader = self.readers.pop(name, None)
                if old_reader is not None:
                    old_reader.stop(1.0)
                sc = new.scanners.get(name)
                if sc is not None and sc.enabled:
                    reader = self._make_reader(name, sc)
                    reader.start()
                    self.readers[name] = reader
                changed.append(f"scanners.{name}")
        if new.stations != self.cfg.stations or new.patterns != self.cfg.patterns:

            def swap(_store: HotStore) -> None:
                self.processor.reconfigure(new)

            self.writer.call(swap)
            changed.append("stations/patterns")
        self.cfg = new
        self.config_hash = config_hash(self.config_path)
        log.info("config reloaded: %s", ", ".join(changed) or "nothing changed")
        return changed

    def status(self) -> dict[str, Any]:
        """A status report for the ``status`` command."""
        f = self.figures()
        return {
            "version": __version__,
            "boot": self.boot,
            "config_hash": self.config_hash,
            "cache_version": self._cache_version(),
            "clock_synced": self.clock.synced(),
            "outbox_depth": f.outbox_depth,
            "oldest_unsent_age_s": f.oldest_unsent_age_s,
            "scans": dict(f.scans),
            "stations": {
                n: {"step": st.step, "location": st.location}
                for n, st in self.processor.stations.items()
            },
            "printers": dict(f.printers),
            "readers": sorted(self.readers),
            "publisher": {  # the MQTT child process (restarted by the gateway when it dies)
                "pid": getattr(self.publisher, "pid", None),
                "restarts": getattr(self.publisher, "restarts", 0),
                "connected": self.publisher.connected if self.publisher is not None else False,
            },
        }

    def stock(self, filters: Any, limit: int) -> list[dict[str, Any]]:
        """``stock`` command: what ``traceway stock --json`` prints, read beside the writer."""
        from gateway.store import queries

        with self._reader() as conn:
            return queries.stock(conn, limit=limit, **filters)

    def trace(self, keys: Any, limit: int) -> list[dict[str, Any]]:
        """``trace`` command: what ``traceway trace --json`` prints, read beside the writer."""
        from gateway.store import queries

        with self._reader() as conn:
            return queries.trace(conn, limit=limit, **keys)

    def republish(self, from_seq: int, to_seq: int) -> dict[str, Any]:
        """``republish`` command: the published outbox rows of a seq range, sent again (QoS 1,
        the stored bytes: same ``event_id``). The central side asks for a seq gap that stays
        open (e.g. messages a broker lost in a restart after acknowledging them)."""
        from gateway.mqtt.commands import republish_plan

        if self.publisher is None or not self.publisher.connected:
            raise RuntimeError("not connected to the broker")
        with self._reader() as conn:
            rows = conn.execute(
                "SELECT seq, topic, payload, published_at FROM outbox "
                "WHERE seq BETWEEN ? AND ? ORDER BY seq",
                (from_seq, to_seq),
            ).fetchall()
        plan = republish_plan(rows, from_seq, to_seq)
        for _seq, topic, payload in plan.send:
            self.publisher.client.publish(topic, payload, qos=1)
        log.info(
            "republish %d..%d: %d sent again, %d not yet published, gone: %s",
            from_seq,
            to_seq,
            len(plan.send),
            plan.unsent,
            plan.gone or "none",
        )
        return plan.result(from_seq, to_seq, len(plan.send))

    @contextlib.contextmanager
    def _reader(self) -> Any:
        """A read-only connection holding one read transaction (a WAL snapshot of what is
        committed). Answers never go through the single writer: a 5,000-row answer would
        hold up every scan queued behind it, and a reader cannot write by mistake."""
        from urllib.parse import quote

        uri = f"file:{quote(str(self.cfg.storage.path.resolve()))}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, timeout=5.0, isolation_level=None)
        try:
            conn.execute("BEGIN")  # every SELECT of the answer sees the same commit
            yield conn
        finally:
            conn.close()

    # -- life cycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Start writer, publisher and readers."""
        # Hand the GIL over sooner than the default 5 ms: readers and the writer are
        # latency-sensitive (an evdev client's ring holds only ~64 events).
        sys.setswitchinterval(float(os.environ.get("TRACEWAY_SWITCH_INTERVAL", "0.001")))
        self._reporter.start()
        self.writer.start()
        self.checkpointer.start()
        if self.publisher is not None:
            self.publisher.start()
        for worker in self.print_workers.values():
            worker.start()
        if self.gates is not None:
            self.gates.start()
        if self.metrics_loop is not None:
            self.metrics_loop.start()
        if self.expiry_check is not None:
            self.expiry_check.start()  # the first check now, then every interval
        self.prometheus = start_prometheus(
            self.cfg.metrics, self.figures, self.cfg.gateway.id, self.cfg.gateway.site
        )
        for name, sc in self.cfg.scanners.items():
            if not sc.enabled:
                continue
            reader = self._make_reader(name, sc)
            reader.start()
            self.readers[name] = reader
        self._start_hotplug()
        # Everything allocated so far lives as long as the daemon: keep it out of the
        # cyclic GC's way, so collections stay short (they stall every thread).
        gc.freeze()
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
        """Stop readers, drain the writer, publish offline, close — all within ``timeout``.

        systemd kills the unit 15 s after SIGTERM (TimeoutStopSec); every wait here
        takes its share of one deadline so the sum cannot exceed it, and a phase
        that took long is named in the log.
        """
        start = time.monotonic()
        deadline = start + timeout
        phases: list[tuple[str, float]] = []
        mark = start

        def left(reserve: float, cap: float, floor: float = 0.2) -> float:
            return min(cap, max(floor, deadline - time.monotonic() - reserve))

        def done(name: str) -> None:
            nonlocal mark
            now = time.monotonic()
            phases.append((name, now - mark))
            mark = now

        if self.watcher is not None:
            self.watcher.stop()
        for reader in self.readers.values():
            try:
                reader.stop(1.0)
            except Exception:
                log.exception("stopping a reader failed")
        done("readers")
        if self.gates is not None:
            self.gates.stop()  # open gates go to the writer
        if self.expiry_check is not None:
            self.expiry_check.stop()  # before the writer: its checks go through it
        for worker in self.print_workers.values():
            worker.stop(2.0)  # before the writer: their state changes go through it
        done("printers")
        self.writer.stop(left(reserve=3.0, cap=timeout, floor=1.0))
        done("writer")
        self.checkpointer.stop(left(reserve=2.0, cap=5.0))
        done("checkpoint")
        self._reports.put(None)  # after the last outcome: report everything, then stop
        self._reporter.join(left(reserve=1.0, cap=2.0))
        self.feedback.close()
        if self.metrics_loop is not None:
            self.metrics_loop.stop()
        if self.prometheus is not None:
            self.prometheus.close()
        done("reports")
        if self.publisher is not None:
            self.publisher.stop(
                self._status_message("offline", "shutdown"),
                left(reserve=0.0, cap=timeout, floor=0.5),
            )
        done("publisher")
        self.engine.dispose()
        self.stopped.set()
        total = time.monotonic() - start
        if total > timeout / 2:
            log.warning(
                "slow shutdown: %.1f s (%s)",
                total,
                ", ".join(f"{name} {secs:.1f} s" for name, secs in phases if secs >= 0.1),
            )

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
        pruning = PruneSchedule(time.monotonic())
        while not stop.wait(0.2):
            if pruning.due(time.monotonic()):
                pruning.started(gw.prune_once())
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
