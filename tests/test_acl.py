"""The example broker config and ACL in config/mosquitto/ confine each gateway to its subtree.

The shipped ``mosquitto.conf`` and ``traceway.acl`` are used as they are, with
only paths and ports rewritten, so the test breaks when either file does.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gateway.config import BrokerConfig, TlsConfig
from gateway.mqtt.tls import configure_client, tls_context
from tests.conftest import Broker, free_port
from tests.tls_util import Pki, issue, make_pki, run_as_self

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config" / "mosquitto"
TIMEOUT = 5.0
NOT_AUTHORIZED = 135  # MQTT v5 reason code
#: mosquitto's acl_file grants every SUBSCRIBE and filters each message at delivery,
#: so a subscription outside the subtree is "granted" (or, with a plugin, refused)
#: and must receive nothing. The tests check what is delivered.
SUBACK_OK_OR_DENIED = {1, NOT_AUTHORIZED}

USERS = {"central": "central-pw", "siteA/gw1": "a1-pw", "siteA/gw2": "a2-pw", "siteB/gw1": "b1-pw"}
#: What provisioning adds per gateway (see systemd/INSTALL.md): site-wide master data.
SITE_BLOCKS = "".join(
    f"\nuser {u}\ntopic read traceway/v1/{u.split('/')[0]}/cache/#\n" for u in USERS if "/" in u
)


@dataclass
class AclBroker:
    broker: Broker
    pki: Pki
    password_port: int
    cert_port: int
    dir: Path


def _passwd(path: Path) -> None:
    exe = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    if not Path(exe).exists():
        pytest.fail("mosquitto_passwd is not installed (Debian package: mosquitto)")
    for i, (user, pw) in enumerate(USERS.items()):
        args = [exe, "-b", *(["-c"] if i == 0 else []), str(path), user, pw]
        subprocess.run(args, check=True, timeout=30, capture_output=True)


def _conf(d: Path, pki: Pki, pw_port: int, cert_port: int) -> str:
    text = (EXAMPLE / "mosquitto.conf").read_text()
    subs = {
        "/etc/mosquitto/traceway.passwd": str(d / "passwd"),
        "/etc/mosquitto/traceway.acl": str(d / "acl"),
        "/etc/mosquitto/certs/traceway-ca.crt": str(pki.ca.cert_file),
        "/etc/mosquitto/certs/broker.crt": str(pki.server.cert_file),
        "/etc/mosquitto/certs/broker.key": str(pki.server.key_file),
        "listener 8883\n": f"listener {pw_port} 127.0.0.1\n",
        "listener 8884\n": f"listener {cert_port} 127.0.0.1\n",
        "persistence true\n": "persistence false\n",
    }
    for old, new in subs.items():
        assert old in text, f"config/mosquitto/mosquitto.conf no longer contains {old!r}"
        text = text.replace(old, new)
    settings = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    assert not [ln for ln in settings if "/etc/" in ln]
    return run_as_self() + text


@pytest.fixture(scope="module")
def acl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AclBroker]:
    d = tmp_path_factory.mktemp("aclbroker")
    pki = make_pki(d / "pki", client_cn="siteA/gw1")
    _passwd(d / "passwd")
    (d / "acl").write_text((EXAMPLE / "traceway.acl").read_text() + SITE_BLOCKS)
    pw_port, cert_port = free_port(), free_port()
    conf = d / "mosquitto.conf"
    conf.write_text(_conf(d, pki, pw_port, cert_port))
    b = Broker(port=pw_port, conf=conf, log=d / "mosquitto.log")
    b.start()
    try:
        yield AclBroker(b, pki, pw_port, cert_port, d)
    finally:
        b.stop()


@dataclass
class Client:
    """A connected MQTT v5 client that records messages, SUBACKs and PUBACKs."""

    mqtt: mqtt.Client
    messages: list[tuple[str, bytes]] = field(default_factory=list)
    acks: dict[int, list[ReasonCode]] = field(default_factory=dict)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def _wait(self, pred: Callable[[], bool], timeout: float = TIMEOUT) -> None:
        with self.cond:
            assert self.cond.wait_for(pred, timeout), "timed out"

    def subscribe(self, topic: str) -> int:
        """Subscribe at QoS 1; the SUBACK reason code value."""
        rc, mid = self.mqtt.subscribe(topic, qos=1)
        assert rc == mqtt.MQTT_ERR_SUCCESS and mid is not None
        self._wait(lambda: mid in self.acks)
        return self.acks[mid][0].value

    def publish(self, topic: str, payload: bytes) -> int:
        """Publish at QoS 1; the PUBACK reason code value."""
        info = self.mqtt.publish(topic, payload, qos=1)
        self._wait(lambda: info.mid in self.acks)
        return self.acks[info.mid][0].value

    def wait_message(self, topic: str) -> list[tuple[str, bytes]]:
        """Every message received up to and including the first on ``topic``."""
        self._wait(lambda: any(t == topic for t, _ in self.messages))
        return list(self.messages)

    def close(self) -> None:
        self.mqtt.disconnect()
        self.mqtt.loop_stop()


def _client(
    ab: AclBroker, user: str | None = None, *, cert: bool = False, password: str | None = None
) -> Client:
    """Connect through gateway.mqtt.tls (the code the daemon uses); raise if refused."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    box = Client(c)
    connected: list[ReasonCode] = []

    def on_connect(
        cl: mqtt.Client, ud: object, fl: mqtt.ConnectFlags, rc: ReasonCode, p: Properties | None
    ) -> None:
        with box.cond:
            connected.append(rc)
            box.cond.notify_all()

    def on_disconnect(
        cl: mqtt.Client, ud: object, fl: mqtt.DisconnectFlags, rc: ReasonCode, p: Properties | None
    ) -> None:
        with box.cond:
            connected.append(rc)
            box.cond.notify_all()

    def on_message(cl: mqtt.Client, ud: object, msg: mqtt.MQTTMessage) -> None:
        with box.cond:
            box.messages.append((msg.topic, bytes(msg.payload)))
            box.cond.notify_all()

    def on_ack(
        cl: mqtt.Client, ud: object, mid: int, rcs: list[ReasonCode], p: Properties | None
    ) -> None:
        with box.cond:
            box.acks[mid] = rcs
            box.cond.notify_all()

    def on_publish(
        cl: mqtt.Client, ud: object, mid: int, rc: ReasonCode, p: Properties | None
    ) -> None:
        with box.cond:
            box.acks[mid] = [rc]
            box.cond.notify_all()

    c.on_connect, c.on_disconnect, c.on_message = on_connect, on_disconnect, on_message
    c.on_subscribe, c.on_publish = on_ack, on_publish
    tls = TlsConfig(enabled=True, ca_file=ab.pki.ca.cert_file)
    if cert:
        tls = tls.model_copy(
            update={"cert_file": ab.pki.client.cert_file, "key_file": ab.pki.client.key_file}
        )
        c.tls_set_context(tls_context(tls))
        port = ab.cert_port
    else:
        pw_file = None
        if user is not None:
            pw_file = ab.dir / f"pw-{user.replace('/', '_')}"
            pw_file.write_text(password if password is not None else USERS[user])
        cfg = BrokerConfig(
            host="127.0.0.1",
            port=ab.password_port,
            tls=tls,
            username=user or "",
            password_file=pw_file,
        )
        configure_client(c, cfg)
        port = ab.password_port
    c.connect("127.0.0.1", port, keepalive=10)
    c.loop_start()
    with box.cond:
        box.cond.wait_for(lambda: bool(connected), TIMEOUT)
    if not connected or connected[0].is_failure:
        c.loop_stop()
        raise ConnectionRefusedError(f"{user}: {connected[0] if connected else 'no CONNACK'}")
    return box


@pytest.fixture
def clients(acl_broker: AclBroker) -> Iterator[dict[str, Client]]:
    """central (subscribed to everything) and three gateways, all connected."""
    out = {u: _client(acl_broker, u) for u in USERS}
    assert out["central"].subscribe("traceway/#") == 1  # granted QoS 1
    try:
        yield out
    finally:
        for c in out.values():
            c.close()


A = "traceway/v1/siteA/gw1"


def _central_got(clients: dict[str, Client], marker: str) -> list[str]:
    """Topics central received up to a marker the gateway publishes after its attempts.

    QoS 1 messages from one client are delivered in order, so anything the
    gateway got through before the marker has arrived by the time it has.
    """
    assert clients["siteA/gw1"].publish(marker, b"marker") == 0
    return [t for t, _ in clients["central"].wait_message(marker)]


@pytest.mark.parametrize(
    "suffix", ["events", "alerts", "status", "metrics", "devices/scanner-1", "commands/reply/42"]
)
def test_gateway_publishes_into_own_subtree(clients: dict[str, Client], suffix: str) -> None:
    assert clients["siteA/gw1"].publish(f"{A}/{suffix}", b"x") == 0
    assert f"{A}/{suffix}" in _central_got(clients, f"{A}/events")


@pytest.mark.parametrize(
    "topic",
    [
        "traceway/v1/siteA/gw2/events",  # a neighbour at the same site
        "traceway/v1/siteB/gw1/events",  # the same gateway id at another site
        "traceway/v1/siteA/gw2/commands",  # commands to another gateway
        f"{A}/commands",  # forging commands to itself
        "traceway/v1/siteA/cache/products",  # master data is central's
        f"{A}/cache/products",
        "traceway/v1/siteA/events",  # outside any gateway subtree
        "other/topic",
    ],
)
def test_gateway_cannot_publish_elsewhere(clients: dict[str, Client], topic: str) -> None:
    assert clients["siteA/gw1"].publish(topic, b"forged") == NOT_AUTHORIZED
    assert topic not in _central_got(clients, f"{A}/alerts")


def test_gateway_receives_only_its_commands(clients: dict[str, Client]) -> None:
    gw1, central = clients["siteA/gw1"], clients["central"]
    assert gw1.subscribe("traceway/v1/siteA/gw2/commands") in SUBACK_OK_OR_DENIED
    assert gw1.subscribe("traceway/v1/siteA/+/commands") in SUBACK_OK_OR_DENIED
    assert gw1.subscribe("traceway/v1/siteB/gw1/commands/#") in SUBACK_OK_OR_DENIED
    assert gw1.subscribe(f"{A}/commands/#") == 1
    assert central.publish("traceway/v1/siteA/gw2/commands", b"for gw2") == 0
    assert central.publish("traceway/v1/siteB/gw1/commands", b"for B") == 0
    assert central.publish(f"{A}/commands", b"for gw1") == 0
    got = gw1.wait_message(f"{A}/commands")
    # Overlapping subscriptions may deliver the own command twice; nothing else may arrive.
    assert {t for t, _ in got} == {f"{A}/commands"}


def test_site_wide_master_data(clients: dict[str, Client]) -> None:
    gw1, central = clients["siteA/gw1"], clients["central"]
    assert gw1.subscribe("traceway/v1/siteB/cache/#") in SUBACK_OK_OR_DENIED
    assert gw1.subscribe("traceway/v1/siteA/gw2/cache/#") in SUBACK_OK_OR_DENIED
    assert gw1.subscribe("traceway/v1/siteA/cache/#") == 1
    assert gw1.subscribe(f"{A}/cache/#") == 1
    assert central.publish("traceway/v1/siteB/cache/products", b"B") == 0
    assert central.publish(f"{A}/cache/delta", b"mine") == 0
    assert central.publish("traceway/v1/siteA/cache/products", b"site") == 0
    got = [t for t, _ in gw1.wait_message("traceway/v1/siteA/cache/products")]
    assert got == [f"{A}/cache/delta", "traceway/v1/siteA/cache/products"]


def test_gateway_cannot_read_others_events(clients: dict[str, Client]) -> None:
    gw1, gw2, central = clients["siteA/gw1"], clients["siteA/gw2"], clients["central"]
    assert gw1.subscribe("traceway/v1/siteA/gw2/events") in SUBACK_OK_OR_DENIED
    assert gw1.subscribe("traceway/#") in SUBACK_OK_OR_DENIED
    assert gw2.publish("traceway/v1/siteA/gw2/events", b"gw2 event") == 0
    assert gw2.publish("traceway/v1/siteA/gw2/status", b"online") == 0
    assert central.publish(f"{A}/commands/ping", b"marker") == 0
    assert [t for t, _ in gw1.wait_message(f"{A}/commands/ping")] == [f"{A}/commands/ping"]


def test_unauthenticated_clients_are_refused(acl_broker: AclBroker) -> None:
    with pytest.raises(ConnectionRefusedError):
        _client(acl_broker, None)
    with pytest.raises(ConnectionRefusedError):
        _client(acl_broker, "siteA/gw1", password="wrong")


def test_client_certificate_identity_is_confined(
    acl_broker: AclBroker, clients: dict[str, Client]
) -> None:
    gw = _client(acl_broker, cert=True)  # CN "siteA/gw1" becomes the username
    try:
        assert gw.publish(f"{A}/status", b"online") == 0
        assert gw.publish("traceway/v1/siteA/gw2/status", b"forged") == NOT_AUTHORIZED
        got = [t for t, _ in clients["central"].wait_message(f"{A}/status")]
        assert "traceway/v1/siteA/gw2/status" not in got
    finally:
        gw.close()


def test_a_cert_from_another_ca_is_refused(acl_broker: AclBroker, tmp_path: Path) -> None:
    rogue_pki = make_pki(tmp_path, client_cn="siteA/gw2")
    rogue = issue(rogue_pki.ca, tmp_path / "rogue", "rogue", "siteA/gw2", client=True)
    tls = TlsConfig(
        enabled=True,
        ca_file=acl_broker.pki.ca.cert_file,
        cert_file=rogue.cert_file,
        key_file=rogue.key_file,
    )
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.tls_set_context(tls_context(tls))
    done = threading.Event()
    result: list[ReasonCode] = []

    def on_connect(
        cl: mqtt.Client, ud: object, fl: mqtt.ConnectFlags, rc: ReasonCode, p: Properties | None
    ) -> None:
        result.append(rc)
        done.set()

    c.on_connect = on_connect
    c.on_disconnect = lambda *a: done.set()
    try:
        c.connect("127.0.0.1", acl_broker.cert_port, keepalive=10)
        c.loop_start()
        done.wait(TIMEOUT)
        time.sleep(0.1)
        c.loop_stop()
    except OSError:
        pass  # refused during the handshake
    assert not any(not rc.is_failure for rc in result)


@pytest.mark.parametrize(
    "suffix", ["events", "alerts", "status", "metrics", "devices/zebra", "cache/ack"]
)
def test_central_cannot_forge_a_gateways_messages(clients: dict[str, Client], suffix: str) -> None:
    assert clients["central"].publish(f"{A}/{suffix}", b"forged") == NOT_AUTHORIZED
