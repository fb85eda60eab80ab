"""The Grafana dashboards, as code: panels of PromQL over the mesh's metrics, rendered to JSON
(grafana/dashboards/*.json, provisioned in compose and shipped as the medai-grafana-dashboards ConfigMap).

Every query works on Prometheus' scrape (compose, Kubernetes) and on the monitor's /metrics alike
(both label series with `service`); the real-Prometheus test evaluates each one over a running mesh.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from libs.config.services import MonitorSettings
from libs.observability import promql
from libs.observability.promql import RATE, calls, quantile, route

DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
SCHEMA_VERSION = 39
GRID_WIDTH = 24
PANEL_HEIGHT = 8
QUANTILES = (0.5, 0.95, 0.99)
HEADER_NOTE = "Written by `python -m libs.observability` from libs/observability/dashboards.py: edit there."


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: str = "timeseries"  # or "stat", "bargauge"
    description: str = ""
    # Drawn red from this value on (an alert rule's threshold).
    threshold: float | None = None
    width: int = 12
    # Data only where NVIDIA GPUs are (the real-Prometheus test allows these to be empty without one).
    needs_gpu: bool = False


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    panels: tuple[Panel, ...] = field(default_factory=tuple)


def _default(setting: str) -> float:
    return float(MonitorSettings.model_fields[setting].default)


def quantiles(metric: str, by: str, selector: str = "", *, by_route: bool = False) -> tuple[Query, ...]:
    """p50, p95 and p99 of a histogram, per `by` (a label, or "route")."""
    legend = "{{" + by + "}}"
    return tuple(Query(quantile(q, metric, by, selector, by_route=by_route), f"{legend} p{round(q * 100)}")
                 for q in QUANTILES)


def average(metric: str, by: str, selector: str = "") -> Query:
    """Mean of a histogram's observations over the rate window, per `by`."""
    rate = f"sum by ({by}) (rate({metric}_{{part}}{{{{{selector}}}}}[{RATE}]))"
    return Query(f"{rate.format(part='sum')} / {rate.format(part='count')}", "{{" + by + "}} mean")


def per_second(metric: str, by: str, selector: str = "", legend: str = "") -> Query:
    return Query(f"sum by ({by}) (rate({metric}{{{selector}}}[{RATE}]))", legend or "{{" + by + "}}")


def _calls_by_method(selector: str) -> str:
    return f"sum by (method) (rate(medai_rpc_requests_total{{{selector}}}[{RATE}]))"


def _calls_with_code(selector: str, code: str) -> str:
    return f'rate(medai_rpc_requests_total{{{selector}, code="{code}"}}[{RATE}])'


def _route_error_ratio(selector: str) -> str:
    total = route(_calls_by_method(selector))
    errors = route(_calls_by_method(f'{selector}, code=~"{promql.ERROR_CODES}"'))
    return f"({errors} or {total} * 0) / {total}"


GATEWAY = calls("gateway")
GATEWAY_MODELS = calls("gateway", 'model_id!=""')
LM_WORKERS = 'service=~"generation|conversation"'
P95_SECONDS = _default("alert_p95_seconds")
ERROR_RATIO = _default("alert_error_ratio")

OVERVIEW = Dashboard(
    "medai-overview", "MedServe overview",
    "Traffic through the gateway: rate, errors, latency, load and refusals, by route (gRPC method, one HTTP "
    "route each) and by model.", (
        Panel("Request rate by route", (Query(
            f"sum by (route) ({route(f'rate(medai_rpc_requests_total{{{GATEWAY}}}[{RATE}])')})", "{{route}}"),),
            "reqps"),
        Panel("Request rate by model", (per_second("medai_rpc_requests_total", "model_id", GATEWAY_MODELS),), "reqps"),
        Panel("Error ratio by route (5xx)", (Query(_route_error_ratio(GATEWAY), "{{route}}"),), "percentunit",
              threshold=ERROR_RATIO, description="Calls that failed server-side (INTERNAL, UNAVAILABLE, "
                                                 "DEADLINE_EXCEEDED, ...) among all calls of the route."),
        Panel("Error ratio by service (5xx)", (Query(promql.error_ratio("service", calls()), "{{service}}"),),
              "percentunit", threshold=ERROR_RATIO),
        Panel("Latency by route (p50, p95, p99)",
              quantiles("medai_rpc_duration_seconds", "route", GATEWAY, by_route=True), "s", threshold=P95_SECONDS,
              description="Streams last until their last token: compare them with their own kind."),
        Panel("Latency by model (p50, p95, p99)",
              quantiles("medai_rpc_duration_seconds", "model_id", GATEWAY_MODELS), "s", threshold=P95_SECONDS),
        Panel("Calls in flight by service", (Query("sum by (service) (medai_rpc_in_flight)", "{{service}}"),)),
        Panel("429s: refused for load or rate limits", (
            Query(f"sum by (route) ({route(_calls_with_code(GATEWAY, 'RESOURCE_EXHAUSTED'))})", "{{route}}"),
            per_second("medai_gateway_rate_limited_total", "limit", legend="per-key limit: {{limit}}"),
        ), "reqps", description="Calls answered RESOURCE_EXHAUSTED (HTTP 429) by route, and the per-key limits "
                                "that refused calls."),
        Panel("Services serving", (Query("max by (service) (medai_service_serving)", "{{service}}"),), kind="stat",
              description="1 while the service reports SERVING on grpc.health, else 0."),
        Panel("Edge (Envoy) responses by class", (Query(
            "sum by (envoy_response_code_class) (rate(envoy_http_downstream_rq_xx"
            f'{{envoy_http_conn_manager_prefix="edge"}}[{RATE}]))', "{{envoy_response_code_class}}xx"),), "reqps"),
    ))

LANGUAGE_MODELS = Dashboard(
    "medai-language-models", "MedServe language models",
    "Generation and conversation workers: latency to the first token and between tokens, throughput, the "
    "continuous batch and cancellations, by model.", (
        Panel("Time to first token (p50, p95, p99)", quantiles("medai_time_to_first_token_seconds", "model_id"), "s"),
        Panel("Inter-token latency (p50, p95, p99)", quantiles("medai_inter_token_latency_seconds", "model_id"), "s"),
        Panel("Tokens per second", (
            per_second("medai_generation_tokens_total", "model_id", legend="{{model_id}} generated"),
            per_second("medai_prompt_tokens_total", "model_id", legend="{{model_id}} prompt"),
        ), "short"),
        Panel("Sequences running and waiting", (
            Query("sum by (model_id) (medai_num_requests_running)", "{{model_id}} running"),
            Query("sum by (model_id) (medai_num_requests_waiting)", "{{model_id}} waiting"),
        )),
        Panel("Decode batch size", (
            average("medai_batch_size", "model_id"),
            Query(quantile(0.95, "medai_batch_size", "model_id"), "{{model_id}} p95"),
        )),
        Panel("Cancellations per second", (per_second(
            "medai_generation_finished_total", "model_id", 'reason="cancelled"', "{{model_id}} cancelled"),),
            "short", description="Sequences dropped because the caller went away or closed the stream."),
        Panel("Sequences finished by reason", (per_second("medai_generation_finished_total", "model_id, reason",
                                                          legend="{{model_id}} {{reason}}"),), "short"),
        Panel("Queue time (p50, p95, p99)", quantiles("medai_request_queue_time_seconds", "model_id", LM_WORKERS), "s"),
    ))

EMBEDDINGS = Dashboard(
    "medai-embeddings", "MedServe embeddings",
    "Embedding workers: dynamic batches formed across requests, and how long requests wait for one.", (
        Panel("Batch size (texts per forward pass)", (
            average("medai_embed_batch_size", "model_id"),
            Query(quantile(0.95, "medai_embed_batch_size", "model_id"), "{{model_id}} p95"),
        )),
        Panel("Queue time (p50, p95, p99)",
              quantiles("medai_request_queue_time_seconds", "model_id", 'service="embedding"'), "s"),
        Panel("Requests and texts per second", (
            per_second("medai_embed_requests_total", "model_id", legend="{{model_id}} requests"),
            per_second("medai_embed_inputs_total", "model_id", legend="{{model_id}} texts"),
        ), "short"),
        Panel("Texts truncated per second", (per_second("medai_embed_truncated_total", "model_id"),), "short"),
    ))

COMPLIANCE = Dashboard(
    "medai-compliance", "MedServe compliance",
    "De-identification and audit: PHI found by category, analysis latency and failures, the response cache, "
    "audit writes, the spool and its replays.", (
        Panel("PHI entities per second by category", (per_second("medai_phi_entities_detected_total", "entity_type"),),
              "short"),
        Panel("PHI entities by category (time range)", (Query(
            "sum by (entity_type) (increase(medai_phi_entities_detected_total[$__range]))", "{{entity_type}}"),),
            kind="bargauge"),
        Panel("De-identification latency per batch (p50, p95, p99)",
              quantiles("medai_deidentify_seconds", "service"), "s"),
        Panel("De-identification failures", (Query(
            f"sum by (service) (increase(medai_deidentify_failures_total[{RATE}]))", "{{service}}"),), "short",
            threshold=0.5, description="Requests refused because their PHI analysis failed (alert: any)."),
        Panel("Response cache hit ratio", (Query(
            f"sum by (model_id) (rate(medai_response_cache_hits_total[{RATE}])) / (sum by (model_id) "
            f"(rate(medai_response_cache_hits_total[{RATE}])) + sum by (model_id) "
            f"(rate(medai_response_cache_misses_total[{RATE}])))", "{{model_id}}"),), "percentunit"),
        Panel("Audit write latency (p50, p95, p99)", quantiles("medai_audit_write_seconds", "destination"), "s"),
        Panel("Audit spool depth", (Query("max by (service) (medai_audit_spool_records)", "{{service}}"),),
              threshold=0.5, description="Records waiting for the audit database (alert: not empty for 1 minute)."),
        Panel("Audit records per second by destination", (per_second("medai_audit_records_total", "destination"),),
              "short"),
        Panel("Audit records replayed from the spool", (Query(
            f'sum by (service) (increase(medai_audit_records_total{{destination="replayed"}}[{RATE}]))',
            "replayed"),), "short", description="Records written to the spool while the database was away, "
                                                "appended to the chain once it returned."),
    ))

SYSTEM = Dashboard(
    "medai-system", "MedServe system",
    "The host as the monitor reads it (psutil; GPUs through NVML), and the processes of make run.", (
        Panel("CPU", (Query("max by (service) (medai_system_cpu_percent)", "CPU"),), "percent",
              threshold=_default("alert_cpu_percent")),
        Panel("Memory", (Query(
            "max by (service) (100 * medai_system_memory_used_bytes / medai_system_memory_total_bytes)", "memory"),),
            "percent", threshold=_default("alert_memory_percent")),
        Panel("Disk of the data directory", (Query(
            "max by (service) (100 * medai_system_disk_used_bytes / medai_system_disk_total_bytes)", "disk"),),
            "percent", threshold=_default("alert_disk_percent")),
        Panel("Memory and disk used", (
            Query("max by (service) (medai_system_memory_used_bytes)", "memory"),
            Query("max by (service) (medai_system_disk_used_bytes)", "disk"),
        ), "bytes"),
        Panel("GPU utilisation per device", (Query(
            "max by (gpu) (medai_system_gpu_utilization_percent)", "GPU {{gpu}}"),), "percent", needs_gpu=True),
        Panel("GPU memory per device", (Query(
            "max by (gpu) (100 * medai_system_gpu_memory_used_bytes / medai_system_gpu_memory_total_bytes)",
            "GPU {{gpu}}"),), "percent", threshold=_default("alert_gpu_memory_percent"), needs_gpu=True),
        Panel("GPU temperature per device", (Query(
            "max by (gpu) (medai_system_gpu_temperature_celsius)", "GPU {{gpu}}"),), "celsius", needs_gpu=True),
        Panel("Alerts active in the monitor", (Query("sum by (rule) (medai_alerts_active)", "{{rule}}"),)),
    ))

DASHBOARDS: tuple[Dashboard, ...] = (OVERVIEW, LANGUAGE_MODELS, EMBEDDINGS, COMPLIANCE, SYSTEM)


def _field_config(panel: Panel) -> dict:
    steps = [{"color": "green", "value": None}]
    if panel.threshold is not None:
        steps.append({"color": "red", "value": panel.threshold})
    defaults: dict = {"unit": panel.unit, "thresholds": {"mode": "absolute", "steps": steps}}
    if panel.kind == "timeseries" and panel.threshold is not None:
        defaults["custom"] = {"thresholdsStyle": {"mode": "line"}}
    return {"defaults": defaults, "overrides": []}


def _options(panel: Panel) -> dict:
    if panel.kind == "timeseries":
        return {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                "tooltip": {"mode": "multi", "sort": "none"}}
    return {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, "orientation": "auto"}


def panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict:
    return {
        "id": panel_id, "type": panel.kind, "title": panel.title, "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": PANEL_HEIGHT, "w": panel.width, "x": x, "y": y},
        "fieldConfig": _field_config(panel), "options": _options(panel),
        "targets": [{"refId": chr(ord("A") + index), "datasource": DATASOURCE, "expr": query.expr,
                     "legendFormat": query.legend} for index, query in enumerate(panel.queries)],
    }


def dashboard_json(dashboard: Dashboard) -> dict:
    panels, x, y = [], 0, 0
    for index, panel in enumerate(dashboard.panels, start=1):
        if x + panel.width > GRID_WIDTH:
            x, y = 0, y + PANEL_HEIGHT
        panels.append(panel_json(panel, index, x, y))
        x += panel.width
    return {
        "uid": dashboard.uid, "title": dashboard.title, "description": f"{dashboard.description} {HEADER_NOTE}",
        "tags": ["medai"], "timezone": "browser", "schemaVersion": SCHEMA_VERSION, "version": 1,
        "editable": False, "refresh": "30s", "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": []}, "annotations": {"list": []}, "panels": panels,
    }


def files() -> dict[str, str]:
    """Path under libs/observability -> text."""
    return {f"grafana/dashboards/{d.uid}.json": json.dumps(dashboard_json(d), indent=2) + "\n" for d in DASHBOARDS}
