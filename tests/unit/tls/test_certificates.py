"""The development CA and certificates (`medai certs dev`, `make run`), and certificate files re-read on change."""
from __future__ import annotations

import datetime
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from typer.testing import CliRunner

from libs.cli import app
from libs.config import TlsSettings
from libs.tls.identity import EDGE_CERT, MESH_IDENTITIES, WORKER_NAME, identity_of, spiffe_id
from libs.tls.issue import IssueError, ensure_dev_certificates
from libs.tls.material import CERTIFICATE_EXPIRY, CertificateError, CertificateSource, load_material
from tests.support.mesh_tls import CertFolder, dev_folder


def certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificates(path.read_bytes())[0]


def sans(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return (names.get_values_for_type(x509.UniformResourceIdentifier), names.get_values_for_type(x509.DNSName))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> CertFolder:
    return dev_folder(tmp_path_factory.mktemp("tls"), "test.example")


def test_every_identity_gets_a_spiffe_id_and_its_dns_names(folder: CertFolder) -> None:
    ca = certificate(folder.path / "ca.crt")
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for identity, extra in MESH_IDENTITIES.items():
        cert = certificate(folder.path / f"{identity}.crt")
        cert.verify_directly_issued_by(ca)
        uris, dns = sans(cert)
        assert uris == [spiffe_id("test.example", identity)]
        assert dns == [identity, *extra]
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH} <= set(usages)
        assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert sans(certificate(folder.path / "generation.crt"))[1] == ["generation", WORKER_NAME]
    edge_uris, edge_dns = sans(certificate(folder.path / f"{EDGE_CERT}.crt"))
    assert edge_uris == [] and "localhost" in edge_dns


def test_keys_are_private_and_the_folder_closed(folder: CertFolder) -> None:
    assert stat.S_IMODE(folder.path.stat().st_mode) == 0o700
    keys = sorted(folder.path.glob("*.key"))
    assert {path.stem for path in keys} == {*MESH_IDENTITIES, EDGE_CERT, "ca"}
    assert all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in keys)
    assert not list(folder.path.glob(".*.tmp"))


def test_a_second_run_keeps_everything_and_renew_issues_new_certificates(tmp_path: Path) -> None:
    first = ensure_dev_certificates(tmp_path, "medai.local", 90)
    assert first.created_ca and set(first.issued) == {*MESH_IDENTITIES, EDGE_CERT}
    serial = certificate(tmp_path / "gateway.crt").serial_number
    again = ensure_dev_certificates(tmp_path, "medai.local", 90)
    assert not again.changed
    renewed = ensure_dev_certificates(tmp_path, "medai.local", 90, renew=True, names=["gateway"])
    assert renewed.issued == ["gateway"] and not renewed.created_ca
    assert certificate(tmp_path / "gateway.crt").serial_number != serial
    certificate(tmp_path / "gateway.crt").verify_directly_issued_by(certificate(tmp_path / "ca.crt"))


def test_certificates_near_their_end_or_from_another_ca_are_issued_again(tmp_path: Path) -> None:
    ensure_dev_certificates(tmp_path, "medai.local", 1, names=["monitor"])
    other = dev_folder(tmp_path / "other")
    os.replace(other.path / "gateway.crt", tmp_path / "gateway.crt")
    os.replace(other.path / "gateway.key", tmp_path / "gateway.key")
    report = ensure_dev_certificates(tmp_path, "medai.local", 90, names=["monitor", "gateway"])
    assert report.issued == ["gateway"]  # monitor's 1-day certificate is fresh; gateway's is foreign
    one_day = certificate(tmp_path / "monitor.crt")
    lifetime = one_day.not_valid_after_utc - one_day.not_valid_before_utc
    assert lifetime < datetime.timedelta(days=1, minutes=10)


def test_without_a_ca_key_nothing_can_be_issued(tmp_path: Path) -> None:
    ensure_dev_certificates(tmp_path, "medai.local", 90, names=["gateway"])
    (tmp_path / "ca.key").unlink()
    assert not ensure_dev_certificates(tmp_path, "medai.local", 90, names=["gateway"]).changed  # bring your own
    with pytest.raises(IssueError, match=r"ca\.key"):
        ensure_dev_certificates(tmp_path, "medai.local", 90, names=["monitor"])


def test_identity_comes_only_from_the_one_spiffe_id_of_the_trust_domain() -> None:
    assert identity_of(["spiffe://medai.local/gateway", "gateway"], "medai.local") == "gateway"
    assert identity_of(["gateway", "worker"], "medai.local") is None
    assert identity_of(["spiffe://other.domain/gateway"], "medai.local") is None
    assert identity_of(["spiffe://medai.local/gateway", "spiffe://medai.local/envoy"], "medai.local") is None
    assert identity_of(["spiffe://medai.local/a/b"], "medai.local") is None
    assert identity_of(["spiffe://medai.local.evil/gateway"], "medai.local") is None


def test_material_refuses_a_key_of_another_certificate(folder: CertFolder) -> None:
    files = folder.files("gateway")
    assert load_material(files).serial == folder.serial("gateway")
    with pytest.raises(CertificateError, match="is not the key of"):
        load_material(type(files)(files.ca, files.cert, folder.files("monitor").key))
    with pytest.raises(CertificateError, match="cannot read"):
        load_material(type(files)(files.ca, files.cert.with_name("absent.crt"), files.key))


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_source_picks_up_replaced_files_and_keeps_the_old_pair_while_half_replaced(tmp_path: Path) -> None:
    ensure_dev_certificates(tmp_path, "medai.local", 90, names=["compliance", "monitor"])
    folder = CertFolder(tmp_path)
    clock = FakeClock()
    source = CertificateSource("compliance", folder.files("compliance"), reload_seconds=1.0, clock=clock)
    first = source.current
    staging = dev_folder(tmp_path / "staging")  # another CA: a whole new set, swapped in file by file
    new_serial = staging.serial("compliance")
    os.replace(staging.path / "compliance.key", tmp_path / "compliance.key")
    assert source.poll() is first  # not due yet
    clock.now = 1.5
    assert source.poll() is first  # due, but the key no longer matches the certificate: kept
    os.replace(staging.path / "compliance.crt", tmp_path / "compliance.crt")
    os.replace(staging.path / "ca.crt", tmp_path / "ca.crt")
    clock.now = 3.0
    second = source.poll()
    assert second.generation == first.generation + 1 and second.serial == new_serial
    assert source.poll() is second


def test_expiry_is_exported_per_identity(tmp_path: Path) -> None:
    ensure_dev_certificates(tmp_path, "medai.local", 30, names=["embedding"])
    CertificateSource("embedding", CertFolder(tmp_path).files("embedding"), 5.0)
    seconds = CERTIFICATE_EXPIRY.labels("embedding", "identity")._value.get()  # set_function: read at scrape
    collected = {sample.labels["certificate"]: sample.value for metric in CERTIFICATE_EXPIRY.collect()
                 for sample in metric.samples if sample.labels["identity"] == "embedding"}
    assert 29 * 86400 < collected["identity"] <= 30 * 86400
    assert collected["ca"] > 299 * 86400
    assert seconds is not None


def test_medai_certs_dev_show_and_k8s(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("APP_STATE_DIR", str(tmp_path / "state"))
    runner = CliRunner()
    created = runner.invoke(app, ["certs", "dev"])
    assert created.exit_code == 0, created.output
    assert "created a development CA" in created.output
    assert TlsSettings().folder(tmp_path / "state") == tmp_path / "state" / "tls"
    assert (tmp_path / "state" / "tls" / "gateway.crt").exists()
    assert "every certificate is current" in runner.invoke(app, ["certs", "dev"]).output
    renewed = runner.invoke(app, ["certs", "dev", "--renew", "--days", "7"])
    assert "issued: envoy, gateway" in renewed.output
    shown = runner.invoke(app, ["certs", "show"]).output
    assert "spiffe://medai.local/compliance" in shown and "expires in    7.0 days" in shown
    import json

    secrets = json.loads(runner.invoke(app, ["certs", "k8s", "--namespace", "ward"]).output)["items"]
    names = {secret["metadata"]["name"] for secret in secrets}
    assert names == {*(f"medai-tls-{identity}" for identity in MESH_IDENTITIES), "medai-edge-tls"}
    assert all(secret["metadata"]["namespace"] == "ward" and secret["type"] == "kubernetes.io/tls"
               for secret in secrets)
    assert not any("ca.key" in secret["data"] for secret in secrets)
