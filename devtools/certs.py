"""A throwaway certificate authority, so tests can run servers that speak verified TLS.

A real deployment's CA is not at hand in a test, and a self-signed server certificate would
not exercise what matters: that syncd checks the chain up to the CA it is given and the name
in the certificate. ``ThrowawayCA(dir)`` makes a CA; ``issue`` makes certificates signed by
it, for servers (names and addresses in the subjectAltName) or clients (a user's certificate
for `REQUIRE X509` or PostgreSQL's `clientcert`). Keys are ECDSA P-256 (made in a few
milliseconds), written with mode 0600; everything is valid from an hour ago for 30 days.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOOPBACK_NAMES = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class TlsFiles:
    """PEM files: the CA certificate, and a certificate signed by it with its private key."""

    ca: Path
    cert: Path
    key: Path


class ThrowawayCA:
    """A CA whose key lives in ``directory`` for as long as the test needs it."""

    def __init__(self, directory: Path, name: str = "syncd throwaway CA") -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.name = name
        self._key = ec.generate_private_key(ec.SECP256R1())
        subject = _name(name)
        self._cert = (_builder(subject, subject, self._key.public_key())
                      .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                      .add_extension(_usage(cert_sign=True), critical=True)
                      .sign(self._key, hashes.SHA256()))
        self.ca_path = self.directory / f"{_file_name(name)}.pem"
        self.ca_path.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, name: str, hosts: tuple[str, ...] = LOOPBACK_NAMES, client: bool = False) -> TlsFiles:
        """A certificate for ``name`` (its CN), valid for ``hosts`` (DNS names or IP addresses;
        none for a client), signed by this CA."""
        key = ec.generate_private_key(ec.SECP256R1())
        purpose = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = (_builder(_name(name), self._cert.subject, key.public_key())
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(_usage(cert_sign=False), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([purpose]), critical=False))
        if hosts:
            builder = builder.add_extension(x509.SubjectAlternativeName([_general_name(h) for h in hosts]),
                                            critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        base = self.directory / _file_name(name)
        cert_path, key_path = base.with_suffix(".crt"), base.with_suffix(".key")
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.touch(mode=0o600)
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return TlsFiles(self.ca_path, cert_path, key_path)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _file_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name)


def _builder(subject: x509.Name, issuer: x509.Name,
             public_key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
    now = datetime.now(UTC)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=30)))


def _usage(cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=not cert_sign, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign,
                         crl_sign=cert_sign, encipher_only=False, decipher_only=False)


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)
