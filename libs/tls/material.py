"""One process's certificate files, read and checked, and re-read when they change (rotation without restart).

`CertificateSource.poll()` is cheap (a clock read) between checks; every `reload_seconds` it compares the
files' stat signatures and, when one changed, loads and checks them: a certificate whose key does not
match (a rotation half done) or an unreadable file keeps the previous material until the next change.
Servers ask it on every new handshake, clients before every call; the generation number tells them to
rebuild their credentials. Each source also exports its expiry as `medai_certificate_expiry_seconds`.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from prometheus_client import Gauge

from libs.config.tls import TlsFiles

log = logging.getLogger(__name__)

CERTIFICATE_EXPIRY = Gauge(
    "medai_certificate_expiry_seconds",
    "Seconds until a certificate this process uses expires (negative once expired); "
    "certificate=identity (its own) or ca (the earliest-expiring CA it trusts)",
    ["identity", "certificate"],
)


class CertificateError(Exception):
    """The files cannot be used: missing, unreadable, or a key that does not match its certificate."""


@dataclass(frozen=True)
class Material:
    """The PEM bytes of one consistent set of files, and what the process needs to know about them."""

    ca: bytes
    cert: bytes
    key: bytes
    files: TlsFiles
    not_after: float
    ca_not_after: float
    serial: int
    generation: int = 0


def _public(key) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_material(files: TlsFiles, generation: int = 0) -> Material:
    """Read and check the three files (CertificateError naming the file when they cannot be used)."""
    try:
        ca, cert, key = files.ca.read_bytes(), files.cert.read_bytes(), files.key.read_bytes()
    except OSError as error:
        raise CertificateError(f"cannot read {error.filename}: {error.strerror}") from None
    try:
        authorities = x509.load_pem_x509_certificates(ca)
        chain = x509.load_pem_x509_certificates(cert)
        private_key = serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError) as error:
        raise CertificateError(f"not PEM certificates and key: {files.cert}, {files.key}, {files.ca} "
                               f"({type(error).__name__})") from None
    if _public(private_key.public_key()) != _public(chain[0].public_key()):
        raise CertificateError(f"{files.key} is not the key of {files.cert}")
    return Material(ca, cert, key, files, chain[0].not_valid_after_utc.timestamp(),
                    min(authority.not_valid_after_utc.timestamp() for authority in authorities),
                    chain[0].serial_number, generation)


def _signature(files: TlsFiles) -> tuple:
    """What changes when a file is replaced: inode, size and modification time (symlinks followed, so a
    Kubernetes Secret's atomic `..data` swap counts)."""
    parts = []
    for path in (files.ca, files.cert, files.key):
        try:
            stat = os.stat(path)
            parts.append((stat.st_ino, stat.st_size, stat.st_mtime_ns))
        except OSError:
            parts.append(None)
    return tuple(parts)


class CertificateSource:
    """The current material of one identity's files; thread-safe (gRPC calls its fetcher from its own threads)."""

    def __init__(self, identity: str, files: TlsFiles, reload_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.identity = identity
        self._files = files
        self._reload_seconds = reload_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._signature = _signature(files)
        self._material = load_material(files)  # a process does not start without usable files
        self._next_check = clock() + reload_seconds
        CERTIFICATE_EXPIRY.labels(identity, "identity").set_function(lambda: self._material.not_after - time.time())
        CERTIFICATE_EXPIRY.labels(identity, "ca").set_function(lambda: self._material.ca_not_after - time.time())

    @property
    def current(self) -> Material:
        return self._material

    def poll(self) -> Material:
        """The current material, re-read first when the check is due and a file changed."""
        if self._clock() < self._next_check:
            return self._material
        with self._lock:
            if self._clock() >= self._next_check:
                self._next_check = self._clock() + self._reload_seconds
                self._reload_if_changed()
        return self._material

    def _reload_if_changed(self) -> None:
        signature = _signature(self._files)
        if signature == self._signature:
            return
        self._signature = signature
        try:
            material = load_material(self._files, self._material.generation + 1)
        except CertificateError as error:
            log.warning("certificate files of %s changed but cannot be used yet (kept the previous ones): %s",
                        self.identity, error)
            return
        self._material = material
        log.info("certificate of %s reloaded: serial %x, expires in %.1f days", self.identity, material.serial,
                 (material.not_after - time.time()) / 86400)


_SOURCES: dict[tuple[str, TlsFiles], CertificateSource] = {}
_SOURCES_LOCK = threading.Lock()


def certificate_source(identity: str, files: TlsFiles, reload_seconds: float) -> CertificateSource:
    """The process's one source for these files (servers, clients and the metrics endpoint share it)."""
    key = (identity, files)
    with _SOURCES_LOCK:
        if key not in _SOURCES:
            _SOURCES[key] = CertificateSource(identity, files, reload_seconds)
        return _SOURCES[key]
