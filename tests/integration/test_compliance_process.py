"""`python -m services.compliance` as a real process: SERVING once Presidio is ready, offline, clean SIGTERM."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.ports import free_ports

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_SECONDS = 90


def wait_until_serving(address: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            assert process.poll() is None, "the compliance process exited"
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service="medai.compliance.v1.Compliance"), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    raise AssertionError("compliance did not report SERVING in time")


def test_process_serves_offline_and_stops_on_sigterm(tmp_path):
    port, down_worker = free_ports(2)
    env = {**os.environ, "COMPLIANCE_PORT": str(port), "COMPLIANCE_METRICS_PORT": "0",
           "COMPLIANCE_WORKERS": json.dumps([f"127.0.0.1:{down_worker}"]),
           "COMPLIANCE_TLDEXTRACT_CACHE_DIR": str(tmp_path / "tld"), "APP_ENVIRONMENT": "test",
           "APP_DATA_DIR": str(tmp_path / "data"), "APP_LOG_LEVEL": "DEBUG",
           # Where tldextract's module-level extractor (the one that downloads) would cache: it must stay unused.
           "TLDEXTRACT_CACHE": str(tmp_path / "default-tld")}
    process = subprocess.Popen([sys.executable, "-m", "services.compliance"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_serving(f"127.0.0.1:{port}", process)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr[-2000:]
    records = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert any(r["message"] == "stopped" for r in records)
    # Presidio's email/URL checks never tried to download the public-suffix list.
    assert not [r for r in records if r["logger"].startswith(("tldextract", "urllib3", "requests"))]
    assert "publicsuffix" not in stderr
    assert "jane.roe@example.org" not in stderr  # analysed text (the warm-up note) never reaches the logs
    assert not (tmp_path / "default-tld").exists()
    assert (tmp_path / "tld").is_dir()  # our extractor cached the bundled snapshot where settings say
