"""``[scanners.X] type = "phone"``: the page and WebSocket that make phones scanners.

One thread runs an asyncio loop with one ``websockets`` server on ``host:port`` over
TLS. It serves the page (static files of this package, the vendored WebAssembly
decoder, the CA certificate to install) and ``/ws``. The thread only reads, checks
and hands complete scans to the sink (the writer's queue: never blocks); verdicts come
back through :meth:`PhoneReader.on_verdict`, called by the daemon's reporter after
the commit, and go to the phone that sent the scan.

What a phone must get past before a scan reaches the pipeline: the Origin check (only
our own page), the connection limit, a proof of its device key (a signature over a
fresh challenge) with a valid, unrevoked device token, the message size limit (a
bigger frame closes the connection), the message rate limit (a flood closes it), the
scan rate and in-flight limits (excess scans are answered ``not_sent``), and the
message format. A scan's ``scanner`` is ``<scanner name>.<phone name>`` (a phone's
name has no dot, so the part before the last dot is the configured scanner).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import mimetypes
import secrets
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from drivers.scanners.backoff import Backoff
from drivers.scanners.config import PhoneScanner
from drivers.scanners.phone import certs, protocol
from drivers.scanners.phone.protocol import StationView
from drivers.scanners.phone.registry import (
    Device,
    PairingRefused,
    Registry,
    active_devices,
    add_device,
    consume_pairing,
    find_device,
    pairing_open,
)
from drivers.scanners.reader_base import report_status
from drivers.scanners.types import DeviceState, RawScan, ScanSink, StatusSink

log = logging.getLogger(__name__)

AUTH_TIMEOUT = 10.0  # seconds for the first message (pair or hello)
VERDICT_TIMEOUT = 30.0  # a scan without a verdict by then is answered "unknown"
MSG_RATE, MSG_BURST = 30.0, 60  # any message, per connection: beyond this it is closed
MAX_BAD = 20  # malformed messages tolerated per connection
STATIC = ("index.html", "app.js", "style.css", "vendor/zxing-wasm/index.js")
WASM = "vendor/zxing-wasm/zxing_reader.wasm"
CLOSE_POLICY = 1008
CLOSE_REVOKED = 4403
CLOSE_UNAUTHORIZED = 4401
CLOSE_REPLACED = 4409


def state_folder(state_dir: Path, scanner: str) -> Path:
    """Where a phone scanner keeps its certificate and its paired phones."""
    return state_dir / f"phone-{scanner}"


def verify_device_key(public_key_der: bytes, nonce: str, sig: bytes) -> bool:
    """True when ``sig`` (WebCrypto ECDSA P-256/SHA-256, r||s) signs the challenge."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    try:
        key = serialization.load_der_public_key(public_key_der)
    except (ValueError, TypeError):
        return False
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        return False
    if len(sig) != 64:
        return False
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    try:
        key.verify(der, protocol.signed_challenge(nonce), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


@dataclass(eq=False)
class _Session:
    """One authenticated phone connection."""

    ws: Any
    device: Device
    scans: protocol.TokenBucket
    pending: dict[int, float] = field(default_factory=dict)  # frame id -> monotonic sent
    last_station: StationView | None = None


class PhoneReader:
    """Serves every phone of one phone scanner on one thread."""

    kind_name = "phone"

    def __init__(
        self,
        name: str,
        cfg: PhoneScanner,
        sink: ScanSink,
        on_status: StatusSink | None = None,
        *,
        state_dir: Path,
        station_view: Callable[[str], StationView | None] | None = None,
        out: Any = None,
    ) -> None:
        self.name = name
        self.cfg = cfg
        self._sink = sink
        self._on_status = on_status
        self._station_view = station_view
        self._out = out
        self.folder = state_folder(state_dir, name)
        self.registry = Registry(self.folder / "devices.json")
        self.hostnames = list(cfg.hostnames) or certs.default_hostnames()
        self.certs: certs.CertFiles | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_evt: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._sessions: dict[str, _Session] = {}  # by device id
        self._pending: dict[int, tuple[_Session, int]] = {}  # frame id -> (session, scan id)
        self._frame_id = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self.ready = threading.Event()
        self._stopping = threading.Event()  # stop() before the loop runs is not lost
        self.bound_port: int | None = None
        self.refused = {"origin": 0, "auth": 0, "flood": 0, "bad": 0, "not_sent": 0, "busy": 0}
        self._static = self._load_static()

    # -- public -------------------------------------------------------------------------
    def start(self) -> None:
        """Make/load the certificate, then start the server thread (a daemon).

        A missing extra (websockets, segno, cryptography) or an unusable certificate is
        an error of this scanner only (logged, device status ``error``): the gateway and
        its other scanners keep running."""
        if self._thread is not None:
            raise RuntimeError(f"{self.name}: already started")
        try:
            import segno  # noqa: F401
            import websockets  # noqa: F401
        except ImportError as e:
            self._fail(f"needs the 'phone' extra (pip install traceway[phone]): {e}")
            return
        try:
            self.certs = self._certificate()
        except (OSError, ValueError) as e:
            self._fail(f"cannot use the certificate: {e}")
            return
        self._thread = threading.Thread(target=self._run, name=f"phone:{self.name}", daemon=True)
        self._thread.start()

    def _fail(self, why: str) -> None:
        log.error("%s: phone scanner not started: %s", self.name, why)
        self._status("error", why)

    def stop(self, timeout: float = 2.0) -> None:
        """Close every connection and the listening socket; end the thread."""
        self._stopping.set()
        loop, evt = self._loop, self._stop_evt
        if loop is not None and evt is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(evt.set)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("%s: phone server did not stop within %.1fs", self.name, timeout)

    @property
    def connected(self) -> bool:
        return bool(self._sessions)

    @property
    def phones(self) -> list[str]:
        """Names of the connected phones."""
        return sorted(s.device.name for s in list(self._sessions.values()))

    def on_verdict(
        self,
        frame_id: int | None,
        verdict: str,
        reasons: list[tuple[str, str]],
        summary: str,
        seq: int | None,
        station: StationView | None,
    ) -> None:
        """A scan of this reader was committed (or refused): tell the phone (any thread)."""
        loop = self._loop
        if frame_id is None or loop is None:
            return
        args = (frame_id, verdict, reasons, summary, seq, station)
        with contextlib.suppress(RuntimeError):  # the loop is closing
            loop.call_soon_threadsafe(self._deliver, *args)

    def pairing_url(self, token: str) -> str:
        return protocol.page_url(self.hostnames[0], self.cfg.port, token)

    # -- set-up -------------------------------------------------------------------------
    def _certificate(self) -> certs.CertFiles:
        if self.cfg.cert_file is not None and self.cfg.key_file is not None:
            files = certs.configured(self.cfg.cert_file, self.cfg.key_file)
            self.hostnames = list(dict.fromkeys([*self.hostnames, *files.names]))
            log.info("%s: certificate %s (SHA-256 %s)", self.name, files.cert, files.fingerprint)
        else:
            files = certs.ensure_self_made(self.folder, self.hostnames)
            log.warning(
                "%s: self-made certificate for %s; phones must trust its CA %s "
                "(SHA-256 fingerprint %s; download it from %sca.crt)",
                self.name,
                ", ".join(self.hostnames),
                files.ca,
                files.fingerprint,
                protocol.page_url(self.hostnames[0], self.cfg.port),
            )
        return files

    def _load_static(self) -> dict[str, tuple[bytes, str]]:
        root = resources.files("drivers.scanners.phone") / "static"
        files: dict[str, tuple[bytes, str]] = {}
        for rel in (*STATIC, WASM):
            try:
                data = (root / rel).read_bytes()
            except (FileNotFoundError, OSError):
                log.error("%s: page file %s is missing from the package", self.name, rel)
                continue
            ctype = "application/wasm" if rel.endswith(".wasm") else mimetypes.guess_type(rel)[0]
            files["/" + rel] = (data, ctype or "application/octet-stream")
        if "/index.html" in files:
            files["/"] = files["/index.html"]
        return files

    def print_pairing(self, token: str, out: Any = None) -> None:
        """The pairing QR code and URL on the console."""
        out = out or self._out or sys.stdout
        url = self.pairing_url(token)
        print(
            render_pairing(self.name, url, self.cfg.pairing_ttl, self.certs), file=out, flush=True
        )

    # -- the thread ---------------------------------------------------------------------
    def _status(self, state: DeviceState, detail: str, *, expected: bool = False) -> None:
        report_status(self._on_status, self.name, state, detail, expected=expected)

    def _run(self) -> None:
        backoff = Backoff(jitter="decorrelated")
        try:
            asyncio.run(self._main(backoff))
        except Exception:  # never let the reader thread die silently
            log.exception("%s: phone server failed", self.name)
            self._status("error", "phone server failed (see log)")
        self._loop = None

    async def _main(self, backoff: Backoff) -> None:
        from websockets.asyncio.server import serve

        self._stop_evt = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        if self._stopping.is_set():
            return
        assert self.certs is not None
        ctx = certs.server_context(self.certs)
        where = f"{self.cfg.host}:{self.cfg.port}"
        down = False
        while not self._stop_evt.is_set():
            try:
                server = await serve(
                    self._handle,
                    self.cfg.host,
                    self.cfg.port,
                    ssl=ctx,
                    process_request=self._process_request,
                    max_size=6 * self.cfg.max_length + 1024,
                    max_queue=4,
                    ping_interval=10,
                    ping_timeout=10,
                    open_timeout=10,
                    close_timeout=2,
                    server_header=None,
                    compression=None,
                )
            except OSError as e:
                if not down:
                    log.warning("%s: cannot listen on %s: %s (retrying)", self.name, where, e)
                    self._status("disconnected", f"cannot open {where}: {e}")
                    down = True
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop_evt.wait(), backoff.next())
                continue
            self.bound_port = server.sockets[0].getsockname()[1] if server.sockets else None
            log.info(
                "%s: phone page on https://%s:%d/ (listening on %s)",
                self.name,
                self.hostnames[0],
                self.cfg.port,
                where,
            )
            self._status("disconnected", f"listening on {where}, no phone connected", expected=True)
            self.ready.set()
            self._pair_at_start()
            housekeeping = asyncio.create_task(self._housekeeping())
            try:
                await self._stop_evt.wait()
            finally:
                housekeeping.cancel()
                server.close(close_connections=True)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(server.wait_closed(), 3)
        self._status("disconnected", "stopped", expected=True)

    def _pair_at_start(self) -> None:
        if not self.cfg.pair_at_start:
            return
        try:
            if active_devices(self.registry.load()):
                return
            token = self.registry.open_pairing(self.cfg.pairing_ttl)
        except (OSError, ValueError) as e:
            log.error("%s: cannot open a pairing code: %s", self.name, e)
            return
        self.print_pairing(token)

    async def _housekeeping(self) -> None:
        """Every second: revocations, station changes, scans without a verdict."""
        while True:
            await asyncio.sleep(1.0)
            try:
                self._check_revocations()
                self._push_station()
                self._expire_pending()
            except Exception:
                log.exception("%s: housekeeping failed", self.name)

    # -- HTTP -----------------------------------------------------------------------------
    def _process_request(self, conn: Any, request: Any) -> Any:
        from websockets.datastructures import Headers
        from websockets.http11 import Response

        path = request.path.split("?", 1)[0]
        origin = request.headers.get("Origin")
        peer = _peer(conn)
        if path == "/ws":
            if not protocol.origin_allowed(origin, self.hostnames, self.cfg.port):
                self.refused["origin"] += 1
                log.warning("%s: refused socket from %s: origin %r", self.name, peer, origin)
                return conn.respond(403, "origin not allowed\n")
            if len(self._all_connections(conn)) >= self.cfg.max_connections:  # open ones
                return conn.respond(503, "too many connections\n")
            return None
        if origin is not None and not protocol.origin_allowed(
            origin, self.hostnames, self.cfg.port
        ):
            self.refused["origin"] += 1
            return conn.respond(403, "origin not allowed\n")
        if protocol.host_of(request.headers.get("Host", "")) not in {
            h.lower().strip("[]") for h in self.hostnames
        }:  # a name we do not serve (DNS rebinding, a typo): no page
            return conn.respond(421, "use the gateway's configured host name\n")
        if path == "/ca.crt" and self.certs is not None and self.certs.ca is not None:
            body, ctype = self.certs.ca.read_bytes(), "application/x-x509-ca-cert"
        elif path in self._static:
            body, ctype = self._static[path]
        else:
            return conn.respond(404, "not found\n")
        headers = Headers(
            {
                "Content-Type": ctype,
                "Content-Length": str(len(body)),
                "Cache-Control": "no-cache",
                "X-Content-Type-Options": "nosniff",
                "X-Frame-Options": "DENY",
                "Referrer-Policy": "no-referrer",
                "Cross-Origin-Resource-Policy": "same-origin",
                "Permissions-Policy": "camera=(self), microphone=()",
                "Content-Security-Policy": (
                    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; "
                    "connect-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
                    "style-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
                ),
                "Strict-Transport-Security": "max-age=31536000",
                "Connection": "close",
            }
        )
        return Response(200, "OK", headers, body)

    @staticmethod
    def _all_connections(conn: Any) -> set[Any]:
        server = getattr(conn, "server", None)
        return set(getattr(server, "connections", ()) or ())

    # -- the socket -------------------------------------------------------------------------
    async def _handle(self, ws: Any) -> None:
        peer = _peer(ws)
        nonce = secrets.token_urlsafe(24)
        msgs = protocol.TokenBucket(MSG_RATE, MSG_BURST, time.monotonic())
        try:
            await ws.send(protocol.encode({"type": "challenge", "nonce": nonce}))
            try:
                first = await asyncio.wait_for(ws.recv(), AUTH_TIMEOUT)
            except TimeoutError:
                await ws.close(CLOSE_POLICY, "no hello")
                return
            session = await self._authenticate(ws, first, nonce, peer)
            if session is None:
                return
            try:
                await self._serve_session(ws, session, msgs)
            finally:
                self._end_session(session)
        except Exception as e:
            from websockets.exceptions import ConnectionClosed

            if not isinstance(e, ConnectionClosed):
                log.exception("%s: connection from %s failed", self.name, peer)

    async def _refuse(self, ws: Any, code: str, message: str, close: int) -> None:
        self.refused["auth"] += 1
        with contextlib.suppress(Exception):
            await ws.send(protocol.error(code, message))
            await ws.close(close, code)

    async def _authenticate(self, ws: Any, first: Any, nonce: str, peer: str) -> _Session | None:
        try:
            msg = protocol.parse_client(first)
        except protocol.ProtocolError as e:
            self.refused["bad"] += 1
            await self._refuse(ws, e.code, e.message, CLOSE_POLICY)
            return None
        if isinstance(msg, protocol.Pair):
            device = await self._pair(ws, msg, nonce, peer)
        elif isinstance(msg, protocol.Hello):
            device = await self._hello(ws, msg, nonce, peer)
        else:
            await self._refuse(ws, "unauthorized", "pair or say hello first", CLOSE_UNAUTHORIZED)
            return None
        if device is None:
            return None
        session = _Session(
            ws, device, protocol.TokenBucket(self.cfg.rate, self.cfg.burst, time.monotonic())
        )
        old = self._sessions.get(device.id)
        if old is not None:  # the same phone again (a reload, a second tab): one socket each
            self._end_session(old)
            self._spawn(old.ws.close(CLOSE_REPLACED, "replaced by a newer connection"))
        self._sessions[device.id] = session
        view = self._view()
        session.last_station = view
        await ws.send(
            protocol.encode(
                {
                    "type": "welcome",
                    "name": device.name,
                    "scanner": self.scanner_of(device),
                    "station": view.as_json() if view is not None else None,
                }
            )
        )
        log.info("%s: phone %s connected from %s", self.name, device.name, peer)
        self._report_phones()
        return session

    async def _pair(self, ws: Any, msg: protocol.Pair, nonce: str, peer: str) -> Device | None:
        if not verify_device_key(msg.public_key, nonce, msg.sig):
            log.warning("%s: pairing from %s refused: bad key proof", self.name, peer)
            await self._refuse(ws, "bad_signature", "the key proof is wrong", CLOSE_UNAUTHORIZED)
            return None
        token = secrets.token_urlsafe(32)
        now = time.time()
        pub = base64.b64encode(msg.public_key).decode()

        def pair(data: dict[str, Any]) -> Device | PairingRefused:
            if not pairing_open(data, msg.pair_token, now):
                return PairingRefused(
                    "pairing_refused",
                    "pairing code unknown, used or expired: print a new one (traceway phone-pair)",
                )
            try:
                dev = add_device(data, msg.name, token, pub, now, self.cfg.max_devices)
            except PairingRefused as e:
                return e  # the code stays valid: the phone may try another name
            consume_pairing(data, msg.pair_token, now)
            return dev

        try:
            result: Device | PairingRefused = self.registry.update(pair)
        except (OSError, ValueError) as e:
            log.error("%s: cannot write %s: %s", self.name, self.registry.path, e)
            await self._refuse(ws, "server_error", "the gateway cannot store the pairing", 1011)
            return None
        if isinstance(result, PairingRefused):
            log.warning("%s: pairing %r from %s refused: %s", self.name, msg.name, peer, result)
            await self._refuse(ws, result.code, str(result), CLOSE_UNAUTHORIZED)
            return None
        log.warning("%s: phone %s paired from %s", self.name, result.name, peer)
        await ws.send(
            protocol.encode(
                {"type": "paired", "device_id": result.id, "token": token, "name": result.name}
            )
        )
        return result

    async def _hello(self, ws: Any, msg: protocol.Hello, nonce: str, peer: str) -> Device | None:
        try:
            device = find_device(self.registry.load(), msg.device_id)
        except (OSError, ValueError) as e:
            log.error("%s: cannot read %s: %s", self.name, self.registry.path, e)
            device = None
        if device is None or not device.token_matches(msg.token):
            log.warning("%s: refused phone from %s: unknown device or wrong token", self.name, peer)
            await self._refuse(ws, "unauthorized", "this phone is not paired", CLOSE_UNAUTHORIZED)
            return None
        if device.revoked_at is not None:
            log.warning("%s: refused revoked phone %s from %s", self.name, device.name, peer)
            await self._refuse(ws, "revoked", "this phone's pairing was revoked", CLOSE_REVOKED)
            return None
        if not verify_device_key(base64.b64decode(device.public_key), nonce, msg.sig):
            log.warning("%s: refused phone %s from %s: bad key proof", self.name, device.name, peer)
            await self._refuse(ws, "bad_signature", "the key proof is wrong", CLOSE_UNAUTHORIZED)
            return None
        return device

    async def _serve_session(self, ws: Any, s: _Session, msgs: protocol.TokenBucket) -> None:
        bad = 0
        async for frame in ws:
            now = time.monotonic()
            if not msgs.take(now):
                self.refused["flood"] += 1
                log.warning("%s: phone %s floods; connection closed", self.name, s.device.name)
                await ws.close(CLOSE_POLICY, "too many messages")
                return
            try:
                msg = protocol.parse_client(frame)
            except protocol.ProtocolError as e:
                self.refused["bad"] += 1
                bad += 1
                if bad > MAX_BAD:
                    await ws.close(CLOSE_POLICY, "too many bad messages")
                    return
                await ws.send(protocol.error(e.code, e.message))
                continue
            if isinstance(msg, protocol.Ping):
                await ws.send(protocol.encode({"type": "pong"}))
            elif isinstance(msg, protocol.Scan):
                reply = self._scan(s, msg, now)
                if reply is not None:
                    await ws.send(reply)
            else:
                await ws.send(protocol.error("bad_message", "already authenticated"))

    def _scan(self, s: _Session, msg: protocol.Scan, now: float) -> str | None:
        """Hand one scan to the pipeline; the reply if it is refused before that."""
        if len(s.pending) >= self.cfg.max_pending:
            self.refused["busy"] += 1
            return protocol.not_sent(
                msg.id, "busy", "not sent: earlier scans still wait for their answer"
            )
        if not s.scans.take(now):
            self.refused["not_sent"] += 1
            return protocol.not_sent(msg.id, "too_fast", "not sent: too many scans at once")
        self._frame_id += 1
        fid = self._frame_id
        text = msg.text
        if len(text) > self.cfg.max_length:
            shown = text[:64]
            scan = RawScan(
                shown,
                self.scanner_of(s.device),
                time.time(),
                now,
                fid,
                1,
                "frame_too_long",
                f"code longer than the limit ({len(text)} > {self.cfg.max_length} characters)",
            )
        else:
            scan = RawScan(text, self.scanner_of(s.device), time.time(), now, fid, 1)
        s.pending[fid] = now
        self._pending[fid] = (s, msg.id)
        try:
            self._sink(scan)
        except Exception:
            log.exception("%s: scan sink failed; scan lost: %r", self.name, scan)
            del s.pending[fid], self._pending[fid]
            return protocol.not_sent(msg.id, "gateway_error", "not sent: the gateway failed")
        return None

    def scanner_of(self, device: Device) -> str:
        """The ``scanner`` of a phone's scans: ``<scanner>.<phone>``."""
        return f"{self.name}.{device.name}"

    def _end_session(self, s: _Session) -> None:
        if self._sessions.get(s.device.id) is s:
            del self._sessions[s.device.id]
            log.info("%s: phone %s disconnected", self.name, s.device.name)
            self._report_phones()
        for fid in list(s.pending):
            self._pending.pop(fid, None)
        s.pending.clear()

    def _report_phones(self) -> None:
        names = self.phones
        if names:
            self._status("connected", f"phones: {', '.join(names)}")
        else:
            self._status("disconnected", "no phone connected", expected=True)

    # -- verdicts and station -------------------------------------------------------------
    def _deliver(
        self,
        frame_id: int,
        verdict: str,
        reasons: list[tuple[str, str]],
        summary: str,
        seq: int | None,
        station: StationView | None,
    ) -> None:
        entry = self._pending.pop(frame_id, None)
        if entry is None:
            return  # the phone went away (it shows "answer lost")
        s, mid = entry
        s.pending.pop(frame_id, None)
        if station is not None:
            s.last_station = station
        msg = protocol.verdict_message(mid, verdict, reasons, summary, seq, station)
        self._spawn(s.ws.send(msg))

    def _view(self) -> StationView | None:
        if self._station_view is None:
            return None
        try:
            return self._station_view(self.cfg.station)
        except Exception:
            log.exception("%s: station view failed", self.name)
            return None

    def _push_station(self) -> None:
        view = self._view()
        if view is None:
            return
        for s in list(self._sessions.values()):
            if s.last_station != view:
                s.last_station = view
                self._spawn(s.ws.send(protocol.station_message(view)))

    def _expire_pending(self) -> None:
        now = time.monotonic()
        for s in list(self._sessions.values()):
            for fid, at in list(s.pending.items()):
                if now - at > VERDICT_TIMEOUT:
                    _, mid = self._pending.pop(fid, (None, 0))
                    del s.pending[fid]
                    self._spawn(
                        s.ws.send(
                            protocol.encode(
                                {
                                    "type": "unknown",
                                    "id": mid,
                                    "message": "no answer from the gateway in time: check "
                                    "before scanning again",
                                }
                            )
                        )
                    )

    def _check_revocations(self) -> None:
        if not self.registry.changed():
            return
        try:
            data = self.registry.load()
        except (OSError, ValueError) as e:
            log.error("%s: cannot read %s: %s", self.name, self.registry.path, e)
            return
        active = {d.id for d in active_devices(data)}
        for s in list(self._sessions.values()):
            if s.device.id not in active:
                log.warning("%s: phone %s revoked: disconnected", self.name, s.device.name)
                self._end_session(s)
                self._spawn(self._close_revoked(s.ws))

    async def _close_revoked(self, ws: Any) -> None:
        with contextlib.suppress(Exception):
            await ws.send(protocol.error("revoked", "this phone's pairing was revoked"))
            await ws.close(CLOSE_REVOKED, "revoked")

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(_forget(self._tasks))


def _forget(tasks: set[asyncio.Task[Any]]) -> Callable[[asyncio.Task[Any]], None]:
    def done(t: asyncio.Task[Any]) -> None:
        tasks.discard(t)
        if not t.cancelled() and t.exception() is not None:
            log.debug("phone send failed: %s", t.exception())

    return done


def _peer(conn: Any) -> str:
    addr = getattr(conn, "remote_address", None)
    if isinstance(addr, tuple) and len(addr) >= 2:
        return f"{addr[0]}:{addr[1]}"
    return "?"


def qr_text(url: str) -> str:
    """The URL as a QR code drawn with block characters (for a terminal)."""
    import io

    import segno

    buf = io.StringIO()
    segno.make(url, error="m", micro=False).terminal(out=buf, compact=True, border=2)
    return buf.getvalue()


def render_pairing(scanner: str, url: str, ttl: float, files: certs.CertFiles | None) -> str:
    """What the console shows to pair a phone: QR code, URL, validity, certificate."""
    lines = [
        f"Pair a phone with scanner {scanner!r}: scan this code with the phone's camera,",
        f"or open {url}",
        qr_text(url),
        f"The code works once, for {ttl / 60:.0f} minutes.",
    ]
    if files is not None and files.ca is not None:
        lines.append(
            f"The page uses a self-made certificate: install its CA on the phone first "
            f"({url.split('#')[0]}ca.crt, SHA-256 {files.fingerprint})."
        )
    elif files is not None:
        lines.append(f"Certificate SHA-256 {files.fingerprint}.")
    return "\n".join(lines)
