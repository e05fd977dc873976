"""Test-time PKI: a throw-away CA, server and client certificates (never committed)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import pwd
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

Key = ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Issued:
    """A certificate and its key, in memory and as PEM files."""

    cert: x509.Certificate
    key: Key
    cert_file: Path
    key_file: Path


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "traceway test"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _write(directory: Path, stem: str, cert: x509.Certificate, key: Key) -> Issued:
    directory.mkdir(parents=True, exist_ok=True)
    cert_file = directory / f"{stem}.crt"
    key_file = directory / f"{stem}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    return Issued(cert, key, cert_file, key_file)


def make_ca(directory: Path, cn: str = "traceway test CA") -> Issued:
    """A self-signed CA valid for a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _write(directory, "ca", cert, key)


def issue(
    ca: Issued,
    directory: Path,
    stem: str,
    cn: str,
    *,
    dns: tuple[str, ...] = (),
    ips: tuple[str, ...] = (),
    client: bool = False,
) -> Issued:
    """A leaf certificate signed by ``ca``: a server cert (with SANs) or a client cert."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca.key, hashes.SHA256())
    return _write(directory, stem, cert, key)


@dataclass(frozen=True)
class Pki:
    """A CA with a server cert for 127.0.0.1/localhost/broker.test and one client cert."""

    ca: Issued
    server: Issued
    client: Issued
    other_ca: Issued


def make_pki(directory: Path, client_cn: str = "siteA/gw1") -> Pki:
    """Everything a TLS test needs, written under ``directory``."""
    ca = make_ca(directory / "ca")
    server = issue(
        ca,
        directory / "server",
        "server",
        "broker",
        dns=("localhost", "broker.test"),
        ips=("127.0.0.1",),
    )
    client = issue(ca, directory / "client", "client", client_cn, client=True)
    other = make_ca(directory / "other", cn="some other CA")
    return Pki(ca, server, client, other)


def listener_conf(port: int, pki: Pki, *, require_client_cert: bool = False) -> str:
    """mosquitto config lines for a TLS listener on 127.0.0.1:``port`` (append to a broker conf)."""
    lines = [
        f"listener {port} 127.0.0.1",
        f"cafile {pki.ca.cert_file}",
        f"certfile {pki.server.cert_file}",
        f"keyfile {pki.server.key_file}",
        "tls_version tlsv1.2",
    ]
    if require_client_cert:
        lines += ["require_certificate true", "use_identity_as_username true"]
    return "\n".join(lines) + "\n"


def run_as_self() -> str:
    """mosquitto config line keeping the broker as the current user.

    Run as root, mosquitto drops to user ``mosquitto`` before it loads the
    certificates, which it then cannot read from a private pytest tmp dir.
    As any other user the line is ignored.
    """
    return f"user {pwd.getpwuid(os.getuid()).pw_name}\n"
