"""A real Prometheus (Debian's `prometheus` binary) on 127.0.0.1 for tests, scraping a local mesh the way
the compose Prometheus does (libs/observability/prometheus/prometheus-compose.yml, targets moved to the
mesh's local ports), with the project's rule files; and Chromium screenshots of its pages.

Both binaries come from Debian (`make prometheus-tools`: apt-get install prometheus chromium); tests
that need them skip without them.
"""
from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import yaml

from tests.support.local_mesh import ROOT, MeshPorts
from tests.support.ports import free_ports

COMPOSE_CONFIG = ROOT / "libs/observability/prometheus/prometheus-compose.yml"
RULES_DIR = ROOT / "libs/observability/prometheus/rules"
# Grafana's variables, as the evaluation test fills them in.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "10m"}


def prometheus_binary() -> str | None:
    return shutil.which("prometheus")


def chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def local_config(ports: MeshPorts, scrape_interval: str = "1s", tls_dir: Path | None = None) -> dict:
    """The compose scrape config with every target moved to the mesh's local port (Envoy: its admin's
    /stats/prometheus, plain HTTP), plus the supervisor of make run; the project's rules; no Alertmanager.
    tls_dir: the mesh's certificate folder (mesh mTLS: the services' metrics are scraped over HTTPS as the
    `prometheus` identity); None: a mesh without TLS (plain HTTP)."""
    compose = yaml.safe_load(COMPOSE_CONFIG.read_text())
    jobs = []
    for job in compose["scrape_configs"]:
        name = job["job_name"]
        if name in ports.metrics:
            target = f"127.0.0.1:{ports.metrics[name]}"
        elif name == "envoy":
            target = f"127.0.0.1:{ports.admin}"
        else:  # Prometheus itself, Alertmanager: not part of the mesh
            continue
        labels = job["static_configs"][0].get("labels", {})
        job = {key: value for key, value in job.items() if key not in ("scheme", "tls_config")}
        if tls_dir is not None and name in ports.metrics:
            job["scheme"] = "https"
            job["tls_config"] = {"ca_file": str(tls_dir / "ca.crt"), "cert_file": str(tls_dir / "prometheus.crt"),
                                 "key_file": str(tls_dir / "prometheus.key"), "server_name": name}
        jobs.append({**job, "static_configs": [{"targets": [target], "labels": labels}]})
    jobs.append({"job_name": "supervisor", "static_configs": [
        {"targets": [f"127.0.0.1:{ports.supervisor_metrics}"], "labels": {"service": "supervisor"}}]})
    return {"global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
            "rule_files": [str(RULES_DIR / "*.yml")], "scrape_configs": jobs}


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, expr: str) -> list[dict]:
        """Instant query; the result vector (ValueError naming the expression if Prometheus refused it)."""
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=30)
        body = response.json()
        if body.get("status") != "success":
            raise ValueError(f"{expr}: {body.get('error')}")
        return body["data"]["result"]

    def targets_up(self) -> dict[str, str]:
        body = httpx.get(f"{self.url}/api/v1/targets", timeout=10).json()
        return {t["labels"]["job"]: t["health"] for t in body["data"]["activeTargets"]}

    def rules(self) -> list[dict]:
        body = httpx.get(f"{self.url}/api/v1/rules", timeout=10).json()
        return [rule for group in body["data"]["groups"] for rule in group["rules"]]

    def graph_url(self, expr: str, range_input: str = "5m") -> str:
        return f"{self.url}/graph?" + urlencode({"g0.expr": expr, "g0.tab": "0", "g0.range_input": range_input})


@contextlib.contextmanager
def running_prometheus(config: dict, workdir: Path, timeout: float = 60) -> Iterator[Prometheus]:
    """Prometheus on 127.0.0.1:<free port> with this config; stopped (and waited for) afterwards."""
    binary = prometheus_binary()
    if binary is None:
        raise RuntimeError("prometheus is not installed (apt-get install prometheus)")
    (port,) = free_ports(1)
    config_path = workdir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    log = (workdir / "prometheus.log").open("w")
    process = subprocess.Popen(
        [binary, f"--config.file={config_path}", f"--storage.tsdb.path={workdir / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"prometheus did not start:\n{(workdir / 'prometheus.log').read_text()[-3000:]}")
            time.sleep(0.2)
        yield Prometheus(url)
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        log.close()


def screenshot(url: str, path: Path, size: tuple[int, int] = (1400, 900), timeout: float = 90) -> Path:
    """A PNG of the page at url, taken by headless Chromium (its own empty profile, no network but 127.0.0.1)."""
    binary = chromium_binary()
    if binary is None:
        raise RuntimeError("chromium is not installed (apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="medai-chromium-") as profile:
        subprocess.run(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--hide-scrollbars", f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}",
             "--virtual-time-budget=15000", f"--screenshot={path}", url],
            capture_output=True, timeout=timeout, check=True)
    return path
