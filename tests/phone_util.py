"""A scripted phone for the phone scanner tests: WebCrypto-compatible key, pairing, hello."""

from __future__ import annotations

import base64
import json
import ssl
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from drivers.scanners.phone.protocol import signed_challenge


class FakePhone:
    """Holds a P-256 key like the page's non-extractable WebCrypto key."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.device_id = ""
        self.token = ""
        self.name = ""

    @property
    def public_key(self) -> str:
        der = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode()

    def sign(self, nonce: str) -> str:
        """r||s, as WebCrypto's ECDSA sign returns it."""
        der = self.key.sign(signed_challenge(nonce), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return base64.b64encode(r.to_bytes(32, "big") + s.to_bytes(32, "big")).decode()


def tls_client(ca: Path) -> ssl.SSLContext:
    """A client context that verifies the gateway's certificate against its CA."""
    ctx = ssl.create_default_context(cafile=str(ca))
    return ctx


def connect(port: int, ca: Path, origin: str | None = None, **kw: Any) -> Any:
    """An open WebSocket to the phone server (sync client), checked against the CA."""
    from websockets.exceptions import InvalidMessage
    from websockets.sync.client import connect as ws_connect

    started = time.monotonic()
    try:
        return ws_connect(
            f"wss://127.0.0.1:{port}/ws",
            ssl=tls_client(ca),
            origin=origin if origin is not None else f"https://127.0.0.1:{port}",  # type: ignore[arg-type]
            open_timeout=15,
            **kw,
        )
    except InvalidMessage as e:  # the server dropped the handshake: say after how long
        # ~10 s: the server's open timeout ran out; at once: it aborted (an exception)
        waited = time.monotonic() - started
        raise AssertionError(f"handshake dropped by the server after {waited:.2f} s: {e}") from e


def recv(ws: Any, timeout: float = 5) -> dict[str, Any]:
    return dict(json.loads(ws.recv(timeout=timeout)))


def pair(ws: Any, phone: FakePhone, token: str, name: str) -> dict[str, Any]:
    """Pair over an open socket; returns the gateway's answer (paired, or an error)."""
    nonce = recv(ws)["nonce"]
    ws.send(
        json.dumps(
            {
                "type": "pair",
                "pair_token": token,
                "name": name,
                "public_key": phone.public_key,
                "sig": phone.sign(nonce),
            }
        )
    )
    answer = recv(ws)
    if answer["type"] == "paired":
        phone.device_id, phone.token, phone.name = answer["device_id"], answer["token"], name
    return answer


def hello(ws: Any, phone: FakePhone, *, signer: FakePhone | None = None) -> dict[str, Any]:
    nonce = recv(ws)["nonce"]
    ws.send(
        json.dumps(
            {
                "type": "hello",
                "device_id": phone.device_id,
                "token": phone.token,
                "sig": (signer or phone).sign(nonce),
            }
        )
    )
    return recv(ws)
