"""A development CA and one certificate per identity, made with `cryptography` (`medai certs dev`).

Files, in one folder (mode 0700): ca.crt, ca.key, <identity>.crt, <identity>.key, edge.crt, edge.key.
Keys are mode 0600. Every file is written beside its target and renamed over it, so a process (or
Envoy's directory watch) re-reading them never sees half a file. Keys are ECDSA P-256: the cheapest
handshakes of the well-supported kinds.

Bring your own CA: put its certificate and key in ca.crt / ca.key (an intermediate CA is best) and run
`medai certs dev`: the certificates are issued from it. Or issue them elsewhere with the same SANs.
"""
from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from libs.config.tls import CA_CERT_NAME
from libs.tls.identity import EDGE_ADDRESSES, EDGE_CERT, EDGE_NAMES, MESH_IDENTITIES, dns_names, spiffe_id

CA_KEY_NAME = "ca.key"
CA_COMMON_NAME = "MedServe development CA"
ORGANIZATION = "MedServe"
CA_LIFETIME_FACTOR = 10
# Clocks of the machines a certificate is used on may be a little behind the issuer's.
BACKDATE = datetime.timedelta(minutes=5)
# A certificate with less than this share of its lifetime left is issued again on the next start.
RENEW_WHEN_LEFT = 1 / 3


class IssueError(Exception):
    """A certificate cannot be issued (no CA key to sign with, an unreadable file)."""


@dataclass
class IssueReport:
    folder: Path
    created_ca: bool = False
    issued: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.created_ca or bool(self.issued)


@dataclass(frozen=True)
class _Authority:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert_pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def write_file(path: Path, data: bytes, mode: int, owner: int | None = None) -> None:
    """Write beside the target, then rename over it (atomic for readers and directory watchers)."""
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(temporary, mode)
        if owner is not None:
            os.chown(temporary, owner, -1)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _new_authority(days: int) -> _Authority:
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
                      x509.NameAttribute(NameOID.COMMON_NAME, CA_COMMON_NAME)])
    now = _now()
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE).not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _Authority(certificate, key)


def _leaf_sans(name: str, trust_domain: str) -> list[x509.GeneralName]:
    if name == EDGE_CERT:
        return [*(x509.DNSName(dns) for dns in EDGE_NAMES),
                *(x509.IPAddress(ipaddress.ip_address(address)) for address in EDGE_ADDRESSES)]
    return [x509.UniformResourceIdentifier(spiffe_id(trust_domain, name)),
            *(x509.DNSName(dns) for dns in dns_names(name))]


def issue_certificate(authority: _Authority, name: str, trust_domain: str,
                      days: int) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A certificate for one identity (client and server authentication), or the edge's (server only)."""
    key = _new_key()
    now = _now()
    usages = [ExtendedKeyUsageOID.SERVER_AUTH] if name == EDGE_CERT else [ExtendedKeyUsageOID.SERVER_AUTH,
                                                                          ExtendedKeyUsageOID.CLIENT_AUTH]
    ca_key_id = authority.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
                                 x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(authority.certificate.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE).not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(_leaf_sans(name, trust_domain)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_key_id), critical=False)
        .sign(authority.key, hashes.SHA256())
    )
    return certificate, key


def _load_authority(folder: Path) -> _Authority | None:
    cert_path, key_path = folder / CA_CERT_NAME, folder / CA_KEY_NAME
    if not key_path.exists():
        return None
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    public = key.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    for certificate in x509.load_pem_x509_certificates(cert_path.read_bytes()):
        if certificate.public_key().public_bytes(serialization.Encoding.DER,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo) == public:
            return _Authority(certificate, key)
    raise IssueError(f"{key_path} matches no certificate in {cert_path}")


def _usable(folder: Path, name: str, authority: _Authority | None) -> bool:
    """True when name's certificate and key exist, were signed by the authority (when known), and have more
    than RENEW_WHEN_LEFT of their lifetime left."""
    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    if not (cert_path.exists() and key_path.exists()):
        return False
    try:
        certificate = x509.load_pem_x509_certificates(cert_path.read_bytes())[0]
    except ValueError:
        return False
    if authority is not None:
        try:
            certificate.verify_directly_issued_by(authority.certificate)
        except (ValueError, TypeError, InvalidSignature):
            return False
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    return certificate.not_valid_after_utc - _now() > lifetime * RENEW_WHEN_LEFT


def ensure_dev_certificates(folder: Path, trust_domain: str, days: int, *, renew: bool = False,
                            names: Iterable[str] = (*MESH_IDENTITIES, EDGE_CERT),
                            owners: Mapping[str, int] | None = None) -> IssueReport:
    """Create the CA when the folder has none, and a certificate for every name that lacks a usable one (or
    every name, with renew). owners: name -> uid its files are given to (containers' users; needs root)."""
    report = IssueReport(folder)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    authority = _load_authority(folder)
    if authority is None and not (folder / CA_CERT_NAME).exists():
        authority = _new_authority(days * CA_LIFETIME_FACTOR)
        write_file(folder / CA_KEY_NAME, _key_pem(authority.key), 0o600)
        write_file(folder / CA_CERT_NAME, _cert_pem(authority.certificate), 0o644)
        report.created_ca = True
    owners = owners or {}
    for name in names:
        if not renew and _usable(folder, name, authority):
            continue
        if authority is None:
            raise IssueError(f"{folder / CA_KEY_NAME} is missing: cannot issue a certificate for {name}")
        certificate, key = issue_certificate(authority, name, trust_domain, days)
        # The key first: a reader that sees the new certificate then finds its key (and one that sees the
        # new key with the old certificate refuses the pair and tries again).
        write_file(folder / f"{name}.key", _key_pem(key), 0o600, owners.get(name))
        write_file(folder / f"{name}.crt", _cert_pem(certificate), 0o644, owners.get(name))
        report.issued.append(name)
    return report


def export_per_identity(folder: Path, out: Path, names: Iterable[str] = (*MESH_IDENTITIES, EDGE_CERT),
                        owners: Mapping[str, int] | None = None) -> list[Path]:
    """Copy each name's files into out/<name>/{ca.crt, tls.crt, tls.key}: the layout of a Kubernetes TLS
    Secret, for folders mounted into one container each (compose). Files are renamed into place, so a
    container that mounts the folder sees a rotation; owners: name -> uid of its folder and files."""
    owners = owners or {}
    written = []
    for name in names:
        target = out / name
        target.mkdir(parents=True, exist_ok=True, mode=0o700)
        owner = owners.get(name)
        if owner is not None:
            os.chown(target, owner, -1)
        write_file(target / "tls.key", (folder / f"{name}.key").read_bytes(), 0o600, owner)
        write_file(target / "tls.crt", (folder / f"{name}.crt").read_bytes(), 0o644, owner)
        write_file(target / CA_CERT_NAME, (folder / CA_CERT_NAME).read_bytes(), 0o644, owner)
        written.append(target)
    return written
