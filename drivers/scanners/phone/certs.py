"""The HTTPS certificate of the phone page: the configured one, or one the gateway makes.

Browsers allow the camera only on a secure origin, so the page is served over HTTPS.
Without ``cert_file``/``key_file`` the gateway makes, on first start, a small private
CA (P-256, name-constrained to the configured host names and addresses, so even a
stolen CA key cannot vouch for any other site) and a server certificate signed by it
(825 days at most: iOS refuses longer ones). A phone trusts the CA once (README); the
SHA-256 fingerprint of the CA is printed so the person installing it can compare it.
The server certificate is renewed by itself 30 days before it expires; a change of
host names makes a new CA (phones must then trust the new one).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LEAF_DAYS = 820
CA_DAYS = 3650
RENEW_BEFORE = dt.timedelta(days=30)


@dataclass(frozen=True, slots=True)
class CertFiles:
    cert: Path
    key: Path
    ca: Path | None  # the CA to install on phones (None for a configured certificate)
    fingerprint: str  # SHA-256 of the CA (self-made) or of the configured certificate
    names: tuple[str, ...]  # host names and addresses the certificate is valid for


def default_hostnames() -> list[str]:
    """This machine's address on the network (the route to a public address; no packet
    is sent) and its mDNS name."""
    names: list[str] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: only picks the outgoing interface
            names.append(s.getsockname()[0])
        except OSError:
            pass
    host = socket.gethostname().split(".")[0]
    if host and host != "localhost":
        names.append(f"{host}.local")
    return names or ["127.0.0.1"]


def fingerprint(cert: x509.Certificate) -> str:
    """``AB:CD:…`` SHA-256 of the DER certificate (as phones and browsers show it)."""
    h = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest().upper()
    return ":".join(h[i : i + 2] for i in range(0, len(h), 2))


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name.strip("[]")))
    except ValueError:
        return x509.DNSName(name)


def _subtree(name: str) -> x509.GeneralName:
    try:
        ip = ipaddress.ip_address(name.strip("[]"))
        return x509.IPAddress(ipaddress.ip_network(f"{ip}/{ip.max_prefixlen}"))
    except ValueError:
        return x509.DNSName(name)


def _subtree_name(s: x509.GeneralName) -> str:
    v = s.value
    if isinstance(v, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return str(v.network_address)
    return str(v).lower()


def cert_names(cert: x509.Certificate) -> list[str]:
    """The DNS names and IP addresses of a certificate's subjectAltName."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [*san.get_values_for_type(x509.DNSName)] + [
        str(a) for a in san.get_values_for_type(x509.IPAddress)
    ]


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )


def _make_ca(folder: Path, names: list[str], now: dt.datetime) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "traceway"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"traceway phone CA {names[0]}"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(
            x509.NameConstraints(
                permitted_subtrees=[_subtree(n) for n in names], excluded_subtrees=None
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    _write_key(folder / "ca-key.pem", key)
    (folder / "ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _make_leaf(folder: Path, names: list[str], now: dt.datetime) -> None:
    ca = x509.load_pem_x509_certificate((folder / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((folder / "ca-key.pem").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=LEAF_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]), False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(folder / "key.pem", key)
    chain = cert.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(
        serialization.Encoding.PEM
    )
    (folder / "cert.pem").write_bytes(chain)


def ensure_self_made(folder: Path, names: list[str], now: dt.datetime | None = None) -> CertFiles:
    """The self-made CA and server certificate in ``folder`` for ``names``: made when
    missing, renewed when near expiry, remade when the names changed."""
    now = now or dt.datetime.now(dt.UTC)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca_path, leaf_path = folder / "ca.pem", folder / "cert.pem"
    want = sorted(n.lower() for n in names)
    remake_ca = not ca_path.exists() or not (folder / "ca-key.pem").exists()
    if not remake_ca:
        ca = x509.load_pem_x509_certificate(ca_path.read_bytes())
        nc = ca.extensions.get_extension_for_class(x509.NameConstraints).value
        have = sorted(_subtree_name(s) for s in nc.permitted_subtrees or [])
        remake_ca = have != want or ca.not_valid_after_utc - RENEW_BEFORE < now
    if remake_ca:
        _make_ca(folder, names, now)
    remake_leaf = remake_ca or not leaf_path.exists() or not (folder / "key.pem").exists()
    if not remake_leaf:
        leaf = x509.load_pem_x509_certificate(leaf_path.read_bytes())
        remake_leaf = (
            sorted(n.lower() for n in cert_names(leaf)) != want
            or leaf.not_valid_after_utc - RENEW_BEFORE < now
        )
    if remake_leaf:
        _make_leaf(folder, names, now)
    ca = x509.load_pem_x509_certificate(ca_path.read_bytes())
    return CertFiles(leaf_path, folder / "key.pem", ca_path, fingerprint(ca), tuple(names))


def configured(cert: Path, key: Path) -> CertFiles:
    """A certificate from the config (its first PEM block is the server certificate)."""
    c = x509.load_pem_x509_certificate(cert.read_bytes())
    return CertFiles(cert, key, None, fingerprint(c), tuple(cert_names(c)))


def server_context(files: CertFiles) -> ssl.SSLContext:
    """A TLS 1.2+ server context with the certificate chain and key."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(files.cert, files.key)
    return ctx
