"""The Prometheus endpoint over HTTPS with client certificates (libs.tls.https): the monitor (and Prometheus)
read it, any other caller is refused, and a replaced certificate is served from the next connection on."""
from __future__ import annotations

import logging
import ssl
import time
from pathlib import Path

import httpx
import pytest

from libs.tls import mesh_tls
from libs.tls.https import start_metrics_https
from libs.tls.issue import ensure_dev_certificates
from tests.support.mesh_tls import CertFolder, dev_folder, presented_certificate
from tests.support.ports import free_ports

RELOAD_SECONDS = 0.05


@pytest.fixture
def folder(tmp_path: Path) -> CertFolder:
    return dev_folder(tmp_path / "tls")


@pytest.fixture
def endpoint(folder: CertFolder):
    """compliance's metrics endpoint; yields its URL."""
    (port,) = free_ports(1)
    tls = mesh_tls(folder.settings(reload_seconds=RELOAD_SECONDS), "compliance", Path("."))
    stop = start_metrics_https("127.0.0.1", port, tls)
    try:
        yield port
    finally:
        stop()


def get(folder: CertFolder, port: int, identity: str | None, server_name: str = "compliance") -> httpx.Response:
    with folder.http_client(identity) as client:
        return client.get(f"https://127.0.0.1:{port}/metrics", extensions={"sni_hostname": server_name}, timeout=5)


@pytest.mark.parametrize("identity", ["monitor", "prometheus"])
def test_the_monitor_and_prometheus_read_the_metrics(folder, endpoint, identity) -> None:
    answer = get(folder, endpoint, identity)
    assert answer.status_code == 200
    assert 'medai_certificate_expiry_seconds{certificate="identity",identity="compliance"}' in answer.text


@pytest.mark.parametrize("identity", ["gateway", "envoy", "embedding"])
def test_other_identities_get_403_and_a_log_line(folder, endpoint, identity, caplog) -> None:
    caplog.set_level(logging.WARNING, "libs.tls.https")
    answer = get(folder, endpoint, identity)
    assert answer.status_code == 403
    assert "medai_" not in answer.text
    assert f"metrics endpoint refused {identity} (admitted: monitor, prometheus)" in caplog.messages


def test_no_certificate_another_ca_or_plaintext_get_no_answer(folder, endpoint, tmp_path, caplog) -> None:
    caplog.set_level(logging.WARNING, "libs.tls.https")
    with pytest.raises(httpx.HTTPError):
        get(folder, endpoint, None)
    with pytest.raises(httpx.HTTPError):
        get(dev_folder(tmp_path / "other"), endpoint, "monitor")
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{endpoint}/metrics", timeout=5)
    refusals = [message for message in caplog.messages if message.startswith("metrics endpoint refused a connection")]
    assert len(refusals) >= 2  # logged by the server (the foreign CA is refused by the client first)


def test_the_scraper_verifies_the_server_name(folder, endpoint) -> None:
    with pytest.raises(httpx.ConnectError, match=r"certificate verify failed|Hostname mismatch"):
        get(folder, endpoint, "monitor", server_name="gateway")


def test_a_replaced_certificate_is_served_to_new_connections(folder, endpoint) -> None:
    with folder.http_client("monitor") as kept:
        url = f"https://127.0.0.1:{endpoint}/metrics"
        assert kept.get(url, extensions={"sni_hostname": "compliance"}).status_code == 200
        ensure_dev_certificates(folder.path, "medai.local", 90, renew=True, names=["compliance"])
        new = folder.serial("compliance")
        deadline = time.monotonic() + 10
        while presented_certificate(endpoint, "compliance", folder, "monitor", ())[0].serial_number != new:
            assert time.monotonic() < deadline
            time.sleep(RELOAD_SECONDS)
        assert kept.get(url, extensions={"sni_hostname": "compliance"}).status_code == 200


def test_tls_below_1_2_is_refused(folder, endpoint) -> None:
    context = folder.ssl_context("monitor")
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises(httpx.ConnectError), httpx.Client(verify=context) as client:
        client.get(f"https://127.0.0.1:{endpoint}/metrics", extensions={"sni_hostname": "compliance"})
