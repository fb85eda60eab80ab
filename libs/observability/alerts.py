"""The Prometheus alert rules, as data: the seed's thresholds and `for` durations (the same the monitor
applies itself, from `MonitorSettings` and `ALERT_FOR_SECONDS`), rendered to prometheus/rules/.

Each rule is a measured value (`value`, PromQL that returns a series whenever the mesh runs: the
real-Prometheus test evaluates it) compared with a threshold.
"""
from __future__ import annotations

from dataclasses import dataclass

import yaml

from libs.config.services import ALERT_FOR_SECONDS, MonitorSettings
from libs.observability import promql

RULES_FILE = "medai-alerts.yml"
HEADER = ("# Written by `python -m libs.observability` from libs/observability/alerts.py: edit there, then run it.\n"
          "# Loaded by Prometheus in compose (rule_files) and shipped to Kubernetes as the medai-prometheus-rules\n"
          "# ConfigMap (make k8s-observability). Thresholds and `for` durations are the monitor's defaults.\n")
WINDOW = "5m"


@dataclass(frozen=True)
class AlertRule:
    name: str
    group: str
    value: str
    op: str
    threshold: float
    for_seconds: float
    severity: str
    summary: str
    description: str

    @property
    def expr(self) -> str:
        return f"{self.value} {self.op} {_number(self.threshold)}"

    def as_yaml(self) -> dict:
        return {
            "alert": self.name, "expr": self.expr, "for": _duration(self.for_seconds),
            "labels": {"severity": self.severity},
            "annotations": {"summary": self.summary, "description": self.description},
        }


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _duration(seconds: float) -> str:
    return f"{int(seconds // 60)}m" if seconds % 60 == 0 else f"{int(seconds)}s"


def _default(setting: str) -> float:
    return float(MonitorSettings.model_fields[setting].default)


UNARY_GATEWAY_CALLS = promql.calls("gateway", f'method!~"{promql.STREAMS}"')
DAY = 86400
CERTIFICATE_EXPIRY = "min by (identity, certificate) (medai_certificate_expiry_seconds)"
RULES: tuple[AlertRule, ...] = (
    AlertRule(
        "MedaiServiceDown", "medai-availability", 'up{service!=""}', "==", 0, ALERT_FOR_SECONDS["service_not_serving"],
        "critical", "{{ $labels.service }} is down",
        "{{ $labels.service }} at {{ $labels.instance }} has not answered a metrics scrape for 1 minute."),
    AlertRule(
        "MedaiWorkerDown", "medai-availability",
        f'min by (service) (medai_service_serving{{service=~"{promql.WORKERS}"}} or up{{service=~"{promql.WORKERS}"}})',
        "<", 1, ALERT_FOR_SECONDS["worker_down"], "critical", "model worker {{ $labels.service }} is down",
        "{{ $labels.service }} has not been SERVING (or not answering) for 1 minute: its models answer 503."),
    AlertRule(
        "MedaiHighCpu", "medai-resources", "max by (service) (medai_system_cpu_percent)", ">",
        _default("alert_cpu_percent"), ALERT_FOR_SECONDS["cpu_high"], "warning",
        "host CPU at {{ $value | humanize }}%",
        "CPU utilisation seen by the monitor has been above 80% for 5 minutes."),
    AlertRule(
        "MedaiHighMemory", "medai-resources",
        "max by (service) (100 * medai_system_memory_used_bytes / medai_system_memory_total_bytes)", ">",
        _default("alert_memory_percent"), ALERT_FOR_SECONDS["memory_high"], "warning",
        "host memory at {{ $value | humanize }}%", "Memory in use has been above 85% for 5 minutes."),
    AlertRule(
        "MedaiDiskFull", "medai-resources",
        "max by (service) (100 * medai_system_disk_used_bytes / medai_system_disk_total_bytes)", ">",
        _default("alert_disk_percent"), ALERT_FOR_SECONDS["disk_high"], "critical",
        "data disk at {{ $value | humanize }}%",
        "The disk of the data directory (database, audit spool, model cache) has been above 90% for 5 minutes."),
    AlertRule(
        "MedaiGpuMemoryHigh", "medai-resources",
        "max by (service, gpu) (100 * medai_system_gpu_memory_used_bytes / medai_system_gpu_memory_total_bytes)",
        ">", _default("alert_gpu_memory_percent"), ALERT_FOR_SECONDS["gpu_memory_high"], "warning",
        "GPU {{ $labels.gpu }} memory at {{ $value | humanize }}%",
        "GPU memory in use has been above 95% for 5 minutes (only on hosts with NVIDIA GPUs)."),
    AlertRule(
        "MedaiSlowResponses", "medai-traffic",
        promql.quantile(0.95, "medai_rpc_duration_seconds", "service", UNARY_GATEWAY_CALLS, WINDOW), ">",
        _default("alert_p95_seconds"), ALERT_FOR_SECONDS["response_time_p95_high"], "warning",
        "p95 response time {{ $value | humanizeDuration }}",
        "The 95th percentile of the gateway's unary calls has been above 5 s for 5 minutes (streams excluded)."),
    AlertRule(
        "MedaiHighErrorRatio", "medai-traffic", promql.error_ratio("service", promql.calls(), WINDOW), ">",
        _default("alert_error_ratio"), ALERT_FOR_SECONDS["error_ratio_high"], "critical",
        "{{ $labels.service }} fails {{ $value | humanizePercentage }} of its calls",
        "More than 5% of the calls of {{ $labels.service }} have failed server-side (5xx) for 5 minutes."),
    AlertRule(
        "MedaiAuditSpoolNotEmpty", "medai-compliance", "max by (service) (medai_audit_spool_records)", ">", 0,
        ALERT_FOR_SECONDS["audit_spool_not_empty"], "critical",
        "{{ $value }} audit records wait in the spool",
        "The audit database has not taken records for over 1 minute; they wait in the local spool."),
    AlertRule(
        "MedaiDeidentificationFailures", "medai-compliance",
        f"sum by (service) (increase(medai_deidentify_failures_total[{WINDOW}]))", ">", 0,
        ALERT_FOR_SECONDS["deidentify_failures"], "critical",
        "PHI analysis failed for {{ $value | humanize }} request(s)",
        "De-identification failed in the last 5 minutes: those requests were refused."),
    # Mesh mTLS (libs.tls): each process's own certificate and the CA it trusts, and Envoy's certificates.
    # Renewal is due long before: `medai certs dev` renews with a third of the lifetime left, cert-manager
    # a month ahead; replacing the files needs no restart.
    AlertRule(
        "MedaiCertificateExpiringSoon", "medai-certificates", CERTIFICATE_EXPIRY, "<", 14 * DAY, 600, "warning",
        "the {{ $labels.certificate }} certificate of {{ $labels.identity }} expires within 14 days",
        "{{ $value | humanizeDuration }} left: rotate it (replace the files; no restart is needed)."),
    AlertRule(
        "MedaiCertificateExpiring", "medai-certificates", CERTIFICATE_EXPIRY, "<", 2 * DAY, 300, "critical",
        "the {{ $labels.certificate }} certificate of {{ $labels.identity }} expires within 2 days",
        "{{ $value | humanizeDuration }} left; once it has expired, its connections fail the TLS handshake."),
    AlertRule(
        "MedaiEdgeCertificateExpiringSoon", "medai-certificates",
        "min by (service) (envoy_server_days_until_first_cert_expiring)", "<", 14, 600, "warning",
        "a certificate of Envoy expires within {{ $value }} days",
        "The edge's public certificate or Envoy's mesh certificate: rotate it (Envoy re-reads the files)."),
    AlertRule(
        "MedaiAuditRecordsLost", "medai-compliance",
        f"sum by (service) (increase(medai_audit_records_lost_total[{WINDOW}]))", ">", 0, 0, "critical",
        "audit records were lost",
        "Audit records could be written neither to the database nor to the spool."),
)


def render(rules: tuple[AlertRule, ...] = RULES) -> str:
    groups: dict[str, list[dict]] = {}
    for rule in rules:
        groups.setdefault(rule.group, []).append(rule.as_yaml())
    document = {"groups": [{"name": name, "rules": items} for name, items in groups.items()]}
    return HEADER + yaml.safe_dump(document, sort_keys=False, width=120, allow_unicode=True)


def files() -> dict[str, str]:
    """Path under libs/observability -> text."""
    return {f"prometheus/rules/{RULES_FILE}": render()}
