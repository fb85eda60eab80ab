"""libs/observability: the compose Prometheus scrapes every service and Envoy, loads the rules, alerts
Alertmanager; Grafana's datasources and dashboards are wired to them. promtool checks the files when
installed (Debian's `prometheus`); `make compose-test` loads them into a real Prometheus."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from libs.config import EnvoySettings
from libs.config.services import DEFAULT_PORTS
from libs.deploy import edge
from tests.unit.deploy.artifacts import EDGE, ROOT, compose_services

OBSERVABILITY = ROOT / "libs" / "observability"
PROMETHEUS_CONFIG = OBSERVABILITY / "prometheus" / "prometheus-compose.yml"
RULES = sorted((OBSERVABILITY / "prometheus" / "rules").glob("*.yml"))
DASHBOARDS = sorted((OBSERVABILITY / "grafana" / "dashboards").glob("*.json"))
DATASOURCES = OBSERVABILITY / "grafana" / "provisioning" / "datasources"


def prometheus_config() -> dict:
    return yaml.safe_load(PROMETHEUS_CONFIG.read_text())


def jobs() -> dict[str, dict]:
    return {job["job_name"]: job for job in prometheus_config()["scrape_configs"]}


def targets(job: dict) -> list[str]:
    return [target for static in job["static_configs"] for target in static["targets"]]


def listen_port(service: str) -> int:
    """The port a compose observability service listens on (its --web.listen-address)."""
    (address,) = [arg for arg in compose_services()[service]["command"] if arg.startswith("--web.listen-address=")]
    return int(address.rsplit(":", 1)[1])


@pytest.mark.parametrize("service", sorted(DEFAULT_PORTS))
def test_prometheus_scrapes_every_services_metrics_port(service: str) -> None:
    job = jobs()[service]
    assert targets(job) == [f"{service}:{DEFAULT_PORTS[service][1]}"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert job["static_configs"][0]["labels"]["service"] == service
    assert service in compose_services()


def test_prometheus_scrapes_envoys_stats_listener() -> None:
    job = jobs()[EDGE]
    assert job["metrics_path"] == edge.STATS_PATH
    assert targets(job) == [f"{EDGE}:{edge.DEFAULT_STATS_PORT}"]
    assert EnvoySettings.model_fields["admin_port"].default != edge.DEFAULT_STATS_PORT, "the admin stays private"


def test_prometheus_loads_the_rules_and_alerts_alertmanager() -> None:
    config = prometheus_config()
    mounts = dict(str(m).split(":")[:2] for m in compose_services()["prometheus"]["volumes"])
    rules_dir = mounts["./libs/observability/prometheus/rules"]
    assert config["rule_files"] == [f"{rules_dir}/*.yml"]
    (alertmanagers,) = config["alerting"]["alertmanagers"]
    assert targets(alertmanagers) == [f"alertmanager:{listen_port('alertmanager')}"]


def test_rule_files_hold_alerts_with_expressions() -> None:
    assert RULES, "at least one rule file"
    alerts = {}
    for path in RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                assert rule["expr"].strip(), f"{path.name}: {rule}"
                if "alert" in rule:
                    alerts[rule["alert"]] = rule
    down = alerts["MedaiServiceDown"]
    assert re.match(r"up\b", down["expr"]) and down["expr"].endswith("== 0")
    assert down["labels"]["severity"] == "critical"


def test_alertmanager_routes_to_a_defined_receiver() -> None:
    config = yaml.safe_load((OBSERVABILITY / "alertmanager" / "alertmanager.yml").read_text())
    receivers = {receiver["name"] for receiver in config["receivers"]}
    routes = [config["route"], *config["route"].get("routes", [])]
    assert all(route["receiver"] in receivers for route in routes)


def test_grafana_datasources_name_the_compose_services() -> None:
    sources = [source for path in sorted(DATASOURCES.glob("*.yml"))
               for source in yaml.safe_load(path.read_text())["datasources"]]
    by_type = {source["type"]: source for source in sources}
    assert by_type["prometheus"]["url"] == f"http://prometheus:{listen_port('prometheus')}"
    assert by_type["prometheus"]["isDefault"] is True
    assert by_type["jaeger"]["url"] == "http://jaeger:16686"
    assert {"prometheus", "jaeger"} <= set(compose_services())


def metric_names_in_the_code() -> set[str]:
    names = set()
    for path in (ROOT / "libs").rglob("*.py"):
        names |= set(re.findall(r'"(medai_[a-z0-9_]+)"', path.read_text()))
    for path in (ROOT / "services").rglob("*.py"):
        names |= set(re.findall(r'"(medai_[a-z0-9_]+)"', path.read_text()))
    return names


def test_dashboards_query_provisioned_datasources_and_real_metrics() -> None:
    assert DASHBOARDS, "at least one dashboard"
    uids = {source["uid"] for path in DATASOURCES.glob("*.yml")
            for source in yaml.safe_load(path.read_text())["datasources"]}
    known = metric_names_in_the_code()
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        assert dashboard["uid"] and dashboard["title"] and dashboard["panels"], path.name
        for panel in dashboard["panels"]:
            assert panel["datasource"]["uid"] in uids, f"{path.name}: {panel['title']}"
            for target in panel["targets"]:
                for metric in re.findall(r"\b(medai_[a-z0-9_]+)", target["expr"]):
                    base = re.sub(r"_(bucket|sum|count|total)$", "", metric)
                    assert metric in known or base in known, f"{path.name}: {metric} is not exported by the mesh"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian's prometheus) is not installed")
def test_promtool_accepts_the_config_and_rules(tmp_path: Path) -> None:
    rules = subprocess.run(["promtool", "check", "rules", *map(str, RULES)], capture_output=True, text=True,
                           check=False)
    assert rules.returncode == 0, rules.stdout + rules.stderr
    config = subprocess.run(["promtool", "check", "config", "--syntax-only", str(PROMETHEUS_CONFIG)],
                            capture_output=True, text=True, check=False)
    assert config.returncode == 0, config.stdout + config.stderr

