"""The alert rules and dashboards are generated from code (no drift), carry the seed's thresholds, pass
`promtool check rules` and the promtool unit tests, and have the panels the issue lists.

promtool comes with Debian's `prometheus` package (`apt-get install prometheus`); without it those
tests skip."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from libs.config import MonitorSettings
from libs.config.services import ALERT_FOR_SECONDS
from libs.observability import __main__ as generator
from libs.observability import alerts, dashboards

ROOT = Path(__file__).resolve().parents[3]
RULE_FILES = sorted((ROOT / "libs/observability/prometheus/rules").glob("*.yml"))
PROMTOOL_TESTS = sorted((Path(__file__).parent / "promtool").glob("*.test.yml"))
needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None,
                                    reason="promtool not installed (apt-get install prometheus)")


def test_generated_files_match_their_code():
    assert generator.drift() == [], "run python -m libs.observability"


def test_rules_use_the_monitors_thresholds_and_for_durations():
    settings = MonitorSettings()
    by_name = {rule.name: rule for rule in alerts.RULES}
    expected = {"MedaiHighCpu": (80, "cpu_high"), "MedaiHighMemory": (85, "memory_high"),
                "MedaiDiskFull": (90, "disk_high"), "MedaiSlowResponses": (5, "response_time_p95_high"),
                "MedaiHighErrorRatio": (0.05, "error_ratio_high")}
    for name, (threshold, monitor_rule) in expected.items():
        assert by_name[name].threshold == threshold
        assert by_name[name].for_seconds == ALERT_FOR_SECONDS[monitor_rule] > 0
    assert (settings.alert_cpu_percent, settings.alert_memory_percent, settings.alert_disk_percent,
            settings.alert_p95_seconds, settings.alert_error_ratio) == (80, 85, 90, 5, 0.05)
    assert {"MedaiWorkerDown", "MedaiAuditSpoolNotEmpty", "MedaiDeidentificationFailures"} <= by_name.keys()
    assert by_name["MedaiAuditSpoolNotEmpty"].for_seconds == 60


def test_every_rule_in_the_files_has_a_for_duration_severity_and_summary():
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                assert re.fullmatch(r"\d+[sm]", rule["for"]), rule["alert"]
                assert rule["labels"]["severity"] in ("warning", "critical")
                assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_every_alert_has_promtool_unit_tests():
    tested = set()
    for path in PROMTOOL_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            tested |= {item["alertname"] for item in case.get("alert_rule_test", [])}
    assert tested == {rule.name for rule in alerts.RULES}


@needs_promtool
def test_promtool_checks_the_rules():
    result = subprocess.run(["promtool", "check", "rules", *map(str, RULE_FILES)], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts.RULES)} rules found" in result.stdout


@needs_promtool
def test_promtool_unit_tests_of_the_rules_pass():
    result = subprocess.run(["promtool", "test", "rules", *map(str, PROMTOOL_TESTS)], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def _dashboard(uid: str) -> dict:
    return json.loads((ROOT / f"libs/observability/grafana/dashboards/{uid}.json").read_text())


def _titles(uid: str) -> str:
    return " | ".join(panel["title"] for panel in _dashboard(uid)["panels"])


@pytest.mark.parametrize(("uid", "wanted"), [
    ("medai-overview", ["Request rate by route", "Request rate by model", "Error ratio", "Latency by route (p50, p95, "
                        "p99)", "Latency by model (p50, p95, p99)", "in flight", "429s"]),
    ("medai-language-models", ["Time to first token", "Inter-token latency", "Tokens per second", "running and waiting",
                               "batch size", "Cancellations"]),
    ("medai-embeddings", ["Batch size", "Queue time"]),
    ("medai-compliance", ["PHI entities per second by category", "De-identification latency", "cache hit ratio",
                          "Audit write latency", "Audit spool depth", "replayed"]),
    ("medai-system", ["CPU", "Memory", "Disk", "GPU utilisation per device", "GPU memory per device",
                      "GPU temperature per device"]),
])
def test_dashboards_have_the_panels_the_issue_lists(uid, wanted):
    titles = _titles(uid)
    for title in wanted:
        assert title.lower() in titles.lower(), f"{uid}: no panel {title!r} in {titles}"
    if uid == "medai-overview":
        exprs = " ".join(t["expr"] for p in _dashboard(uid)["panels"] for t in p["targets"])
        assert all(f"histogram_quantile({q}," in exprs for q in (0.5, 0.95, 0.99))
        assert 'code="RESOURCE_EXHAUSTED"' in exprs


def test_dashboards_are_valid_grafana_json():
    for dashboard in dashboards.DASHBOARDS:
        document = _dashboard(dashboard.uid)
        ids = [panel["id"] for panel in document["panels"]]
        assert len(ids) == len(set(ids)) and document["schemaVersion"] >= 36
        for panel in document["panels"]:
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0
            assert panel["type"] in ("timeseries", "stat", "bargauge")
            assert panel["targets"] and all(t["expr"] and t["refId"] for t in panel["targets"])
            refs = [t["refId"] for t in panel["targets"]]
            assert len(refs) == len(set(refs))
            for target in panel["targets"]:
                assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]
