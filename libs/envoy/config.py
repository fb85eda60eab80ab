"""The Envoy edge's bootstrap, built as plain data from `EnvoySettings` and written as JSON.

One listener serves HTTP/1.1 JSON (transcoded to the public `medai.gateway.v1.Gateway`
service) and native gRPC (h2c) alike, in plaintext for local use (127.0.0.1:8080); with
ENVOY_TLS_CERT_FILE / ENVOY_TLS_KEY_FILE a second one serves both over TLS (HTTPS, gRPC over
TLS). Envoy calls the gateway over mutual TLS (`libs.envoy.tls`). Every request body is PHI:
nothing here logs or echoes one (access log without bodies or query strings, generic
local-reply bodies).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from libs.config import EnvoySettings
from libs.envoy.tls import downstream_tls, upstream_tls, write_sds_files

DESCRIPTOR_PATH = Path(__file__).resolve().parent.parent / "generated" / "medai_descriptor.pb"
PUBLIC_SERVICE = "medai.gateway.v1.Gateway"
OPENAI_SERVICE = "medai.gateway.v1.OpenAI"
MAX_RESPONSE_BYTES = 8 * 1024 * 1024
PUBLIC_SERVICES = (PUBLIC_SERVICE, OPENAI_SERVICE)
# OpenAI create calls whose "stream": true body is sent to their streaming form (path + ":stream").
OPENAI_STREAMABLE_PATHS = ("/v1/chat/completions", "/v1/completions")
# OpenAI's routes (and their gRPC methods, once transcoded): errors answer in OpenAI's {"error": ...} shape.
OPENAI_PATHS_PATTERN = r"^(/v1/(chat/completions|completions|embeddings|models)|/medai\.gateway\.v1\.OpenAI/).*"
OPENAI_ERROR_HEADER = "x-medai-openai-error"
OPENAI_METADATA_NAMESPACE = "medai.openai"
GATEWAY_CLUSTER = "gateway"
COLLECTOR_CLUSTER = "otel_collector"
# Set by the transcoder on the request it makes from a JSON call; client-sent copies are dropped.
ORIGINAL_PATH_HEADER = "x-envoy-original-path"
ORIGINAL_METHOD_HEADER = "x-envoy-original-method"
SAVED_GRPC_STATUS_HEADER = "x-medai-upstream-grpc-status"
# Client-sent headers with this prefix are dropped: inside the mesh they carry trusted identity.
TRUSTED_HEADER_PREFIX = "x-medai-"
CONNECT_TIMEOUT = "2s"
DEFAULT_OTLP_PORT = 4317
# Envoy's own readiness (200, or 503 once draining: POST admin /healthcheck/fail), for probes and
# load balancers; the mesh's health stays GET /health.
READY_PATH = "/ready"
# Request headers larger than this answer 431 (the gateway accepts more, so none reaches it to fail).
MAX_REQUEST_HEADERS_KB = 16

_TYPE = "type.googleapis.com/envoy."
Json = dict[str, Any]

# Body of every local reply (one Envoy answers itself) by HTTP status: (gRPC code, message).
# Envoy's own texts can quote the request (JSON parse errors do), so none is ever passed on.
LOCAL_REPLIES: dict[int, tuple[int, str]] = {
    400: (3, "request body is not valid JSON for this route"),
    404: (5, "no such route"),
    413: (3, "request body too large"),
    429: (8, "rate limit exceeded, retry later"),
    431: (3, "request headers too large"),
    502: (14, "gateway unavailable"),
    503: (14, "gateway unavailable"),
    504: (4, "gateway timeout"),
}
FALLBACK_REPLY = (2, "request failed at the edge")

ACCESS_LOG_FIELDS: dict[str, str] = {
    "time": "%START_TIME%",
    "method": "%REQ(X-ENVOY-ORIGINAL-METHOD?:METHOD)%",
    # The client's path (the transcoder rewrites :path to the gRPC method), never its query.
    "path": "%REQ_WITHOUT_QUERY(X-ENVOY-ORIGINAL-PATH?:PATH)%",
    "protocol": "%PROTOCOL%",
    "status": "%RESPONSE_CODE%",
    "grpc_status": "%GRPC_STATUS_NUMBER%",
    "response_flags": "%RESPONSE_FLAGS%",
    "duration_ms": "%DURATION%",
    "bytes_received": "%BYTES_RECEIVED%",
    "bytes_sent": "%BYTES_SENT%",
    "request_id": "%REQ(X-REQUEST-ID)%",
    "upstream_host": "%UPSTREAM_HOST%",
    "trace_id": "%TRACE_ID%",
}


def render_config(settings: EnvoySettings, descriptor_path: Path = DESCRIPTOR_PATH) -> Json:
    """The whole Envoy bootstrap for these settings."""
    clusters = [_gateway_cluster(settings)]
    if settings.telemetry.exporting:
        clusters.append(_collector_cluster(_otlp_endpoint(settings)))
    return {
        "node": {"id": "medai-envoy", "cluster": "medai-edge"},
        "admin": {"address": _socket_address("127.0.0.1", settings.admin_port)},
        "static_resources": {"listeners": _listeners(settings, descriptor_path), "clusters": clusters},
        "overload_manager": _overload_manager(),
    }


def write_config(settings: EnvoySettings, descriptor_path: Path = DESCRIPTOR_PATH, path: Path | None = None) -> Path:
    """Render the bootstrap to `path` (default settings.config_path), creating its folder, and the SDS
    files of its certificates."""
    target = path or settings.config_path
    target.parent.mkdir(parents=True, exist_ok=True)
    write_sds_files(settings)
    target.write_text(json.dumps(render_config(settings, descriptor_path), indent=2) + "\n", encoding="utf-8")
    return target


def split_address(address: str, default_port: int | None = None) -> tuple[str, int]:
    """("host", port) of "host:port", "[v6]:port" or a URL like "http://host:port"."""
    parts = urlsplit(address if "://" in address else f"//{address}")
    if not parts.hostname:
        raise ValueError(f"not a host:port address: {address!r}")
    port = parts.port or default_port
    if port is None:
        raise ValueError(f"address without a port: {address!r}")
    return parts.hostname, port


def _socket_address(host: str, port: int) -> Json:
    return {"socket_address": {"address": host, "port_value": port}}


def _seconds(value: float) -> str:
    """A protobuf JSON Duration ("300s", "0.25s"; never an exponent)."""
    return f"{value:.3f}".rstrip("0").rstrip(".") + "s"


def _listeners(settings: EnvoySettings, descriptor_path: Path) -> list[Json]:
    """The plaintext listener (local use), and the TLS one when the edge has a certificate."""
    listeners = [_listener("edge", settings.host, settings.port, settings, descriptor_path)]
    if settings.downstream_tls:
        listeners.append(_listener("edge_tls", settings.tls_host, settings.tls_port, settings, descriptor_path,
                                   downstream_tls(settings)))
    return listeners


def _listener(name: str, host: str, port: int, settings: EnvoySettings, descriptor_path: Path,
              transport_socket: Json | None = None) -> Json:
    chain: Json = {"filters": [{
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": _connection_manager(name, settings, descriptor_path),
    }]}
    if transport_socket:
        chain["transport_socket"] = transport_socket
    return {"name": name, "address": _socket_address(host, port), "filter_chains": [chain]}


def _connection_manager(stat_prefix: str, settings: EnvoySettings, descriptor_path: Path) -> Json:
    timeout = _seconds(settings.route_timeout_seconds)
    manager: Json = {
        "@type": f"{_TYPE}extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": stat_prefix,
        # HTTP/1.1 and h2c (gRPC with prior knowledge) on the same port; over TLS, chosen by ALPN.
        "codec_type": "AUTO",
        "use_remote_address": True,
        "normalize_path": True,
        "merge_slashes": True,
        "generate_request_id": True,
        # A caller's own x-request-id is kept, so its logs and ours share one id.
        "preserve_external_request_id": True,
        "always_set_request_id_in_response": True,
        "request_id_extension": {"typed_config": {
            "@type": f"{_TYPE}extensions.request_id.uuid.v3.UuidRequestIdConfig",
            # Never rewrite a character of the id (the gateway audits it as sent).
            "pack_trace_reason": False,
            "use_request_id_for_trace_sampling": False,
        }},
        "request_headers_timeout": "10s",
        "max_request_headers_kb": MAX_REQUEST_HEADERS_KB,
        # Token streams may stay quiet between tokens for as long as the route allows.
        "stream_idle_timeout": timeout,
        # x_medai_role would slip past the x-medai- strip, and some servers read it as x-medai-role.
        "common_http_protocol_options": {"idle_timeout": "300s", "headers_with_underscores_action": "DROP_HEADER"},
        "http2_protocol_options": {"max_concurrent_streams": 1024},
        "route_config": _route_config(settings),
        "http_filters": _http_filters(settings, descriptor_path),
        "local_reply_config": _local_reply_config(),
        "access_log": [_file_log(settings.access_log_path, ACCESS_LOG_FIELDS)],
    }
    if settings.telemetry.exporting:
        manager["tracing"] = _tracing(settings)
    return manager


def _http_filters(settings: EnvoySettings, descriptor_path: Path) -> list[Json]:
    """Order matters: CORS answers preflights before the rate limit counts them; untrusted headers
    go before anything reads them; responses pass the filters in reverse order (see the saver)."""
    filters = [_readiness_filter()]
    filters += [_cors_filter()] if settings.cors_origins else []
    filters += [
        _rate_limit_filter(settings),
        _header_strip_filter(),
        _body_limit_filter(settings),
        _openai_stream_flag_filter(),
        _openai_lua_filter(),
        _transcoder_filter(settings, descriptor_path),
        _grpc_status_saver_filter(),
        {"name": "envoy.filters.http.router",
         "typed_config": {"@type": f"{_TYPE}extensions.filters.http.router.v3.Router"}},
    ]
    return filters


def _readiness_filter() -> Json:
    """GET /ready answered by Envoy itself: 200 while it takes traffic, 503 once told to drain."""
    return {
        "name": "envoy.filters.http.health_check",
        "typed_config": {
            "@type": f"{_TYPE}extensions.filters.http.health_check.v3.HealthCheck",
            "pass_through_mode": False,
            "headers": [{"name": ":path", "string_match": {"exact": READY_PATH}}],
        },
    }


def _cors_filter() -> Json:
    """The filter; the policy (allowed origins) sits on the virtual host."""
    return {"name": "envoy.filters.http.cors",
            "typed_config": {"@type": f"{_TYPE}extensions.filters.http.cors.v3.Cors"}}


def _cors_policy(origins: list[str]) -> Json:
    return {
        "@type": f"{_TYPE}extensions.filters.http.cors.v3.CorsPolicy",
        "allow_origin_string_match": [{"exact": origin} for origin in origins],
        "allow_methods": "GET, POST, DELETE, OPTIONS",
        "allow_headers": "authorization, content-type, x-request-id, traceparent, tracestate",
        "expose_headers": "x-request-id, retry-after, grpc-status, grpc-message",
        "max_age": "600",
    }


def _rate_limit_filter(settings: EnvoySettings) -> Json:
    rate = settings.local_rate_limit_per_second
    all_requests = {"default_value": {"numerator": 100, "denominator": "HUNDRED"}}
    return {
        "name": "envoy.filters.http.local_ratelimit",
        "typed_config": {
            "@type": f"{_TYPE}extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
            "stat_prefix": "edge_rate_limit",
            "token_bucket": {"max_tokens": rate, "tokens_per_fill": rate, "fill_interval": "1s"},
            "filter_enabled": {**all_requests, "runtime_key": "edge_rate_limit.enabled"},
            "filter_enforced": {**all_requests, "runtime_key": "edge_rate_limit.enforced"},
            # gRPC callers see RESOURCE_EXHAUSTED (HTTP 429), not UNAVAILABLE.
            "rate_limited_as_resource_exhausted": True,
            # The bucket refills every second: the same hint the gateway gives for its own limits.
            "response_headers_to_add": [{"header": {"key": "retry-after", "value": "1"},
                                         "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}],
        },
    }


def _header_strip_filter() -> Json:
    """Drops untrusted request headers; on the way out, restores the gateway's grpc-status (see below)."""
    return _header_mutation(
        request=[
            {"remove_on_match": {"key_matcher": {"prefix": TRUSTED_HEADER_PREFIX}}},
            {"remove": ORIGINAL_PATH_HEADER},
            {"remove": ORIGINAL_METHOD_HEADER},
        ],
        response=[
            _add_header("grpc-status", f"%RESP({SAVED_GRPC_STATUS_HEADER})%", "ADD_IF_ABSENT"),
            {"remove": SAVED_GRPC_STATUS_HEADER},
        ],
    )


def _grpc_status_saver_filter() -> Json:
    """Copies a trailers-only grpc-status before the transcoder turns it into an HTTP status and
    drops it, so JSON callers and the access log still see the gateway's real code."""
    return _header_mutation(response=[_add_header(SAVED_GRPC_STATUS_HEADER, "%RESP(GRPC-STATUS)%", "ADD_IF_ABSENT")])


def _header_mutation(request: list[Json] | None = None, response: list[Json] | None = None) -> Json:
    return {
        "name": "envoy.filters.http.header_mutation",
        "typed_config": {
            "@type": f"{_TYPE}extensions.filters.http.header_mutation.v3.HeaderMutation",
            "mutations": {"request_mutations": request or [], "response_mutations": response or []},
        },
    }


def _add_header(name: str, value: str, action: str) -> Json:
    return {"append": {"header": {"key": name, "value": value}, "append_action": action}}


def _body_limit_filter(settings: EnvoySettings) -> Json:
    """413 for a request body over the limit (requests are small and never client-streamed, so
    buffering them costs nothing; responses, token streams included, are never buffered)."""
    return {
        "name": "envoy.filters.http.buffer",
        "typed_config": {
            "@type": f"{_TYPE}extensions.filters.http.buffer.v3.Buffer",
            "max_request_bytes": settings.max_request_bytes,
        },
    }


def _openai_stream_flag_filter() -> Json:
    """The top-level "stream" of a JSON body, as dynamic metadata (read by the Lua filter that follows)."""
    return {
        "name": "envoy.filters.http.json_to_metadata",
        "typed_config": {
            "@type": f"{_TYPE}extensions.filters.http.json_to_metadata.v3.JsonToMetadata",
            "request_rules": {"rules": [{
                "selectors": [{"key": "stream"}],
                "on_present": {"metadata_namespace": OPENAI_METADATA_NAMESPACE, "key": "stream"},
            }]},
        },
    }


# Requests: an OpenAI create call with "stream": true goes to its streaming method. Responses: an error the
# gateway described for OpenAI (a header, never request text) becomes the body {"error": {...}}.
OPENAI_LUA = """
local streamable = {%(paths)s}
function envoy_on_request(handle)
  local headers = handle:headers()
  if headers:get(":method") == "POST" and streamable[headers:get(":path")] then
    local flags = handle:streamInfo():dynamicMetadata():get("%(namespace)s")
    if flags ~= nil and flags["stream"] == true then
      headers:replace(":path", headers:get(":path") .. ":stream")
    end
  end
end
function envoy_on_response(handle)
  local headers = handle:headers()
  local described = headers:get("%(header)s")
  if described ~= nil then
    headers:remove("%(header)s")
    local body = '{"error":' .. described .. '}'
    handle:body(true):setBytes(body)
    headers:replace("content-length", tostring(#body))
    headers:replace("content-type", "application/json")
  end
end
"""


def _openai_lua_filter() -> Json:
    paths = ", ".join(f'["{path}"] = true' for path in OPENAI_STREAMABLE_PATHS)
    code = OPENAI_LUA % {"paths": paths, "namespace": OPENAI_METADATA_NAMESPACE, "header": OPENAI_ERROR_HEADER}
    return {
        "name": "envoy.filters.http.lua",
        "typed_config": {
            "@type": f"{_TYPE}extensions.filters.http.lua.v3.Lua",
            "default_source_code": {"inline_string": code},
        },
    }


def _transcoder_filter(settings: EnvoySettings, descriptor_path: Path) -> Json:
    return {
        "name": "envoy.filters.http.grpc_json_transcoder",
        "typed_config": {
            "@type": f"{_TYPE}extensions.filters.http.grpc_json_transcoder.v3.GrpcJsonTranscoder",
            "proto_descriptor": str(descriptor_path),
            "services": list(PUBLIC_SERVICES),
            "convert_grpc_status": True,
            "print_options": {
                "preserve_proto_field_names": True,
                "always_print_primitive_fields": True,
                "stream_sse_style_delimited": True,
            },
            "request_validation_options": {
                "reject_unknown_method": True,
                "reject_unknown_query_parameters": True,
            },
            "max_request_body_size": settings.max_request_bytes,
            # Unary answers are transcoded whole; the largest is the Swagger UI's script (about 1 MB).
            "max_response_body_size": MAX_RESPONSE_BYTES,
        },
    }


def _route_config(settings: EnvoySettings) -> Json:
    timeout = _seconds(settings.route_timeout_seconds)
    to_gateway = {
        "cluster": GATEWAY_CLUSTER,
        "timeout": timeout,
        "idle_timeout": timeout,
        # A native gRPC caller's grpc-timeout is honoured up to the route timeout.
        "max_stream_duration": {"grpc_timeout_header_max": timeout},
    }
    virtual_host: Json = {
        "name": "medai",
        "domains": ["*"],
        "routes": [
            # Native gRPC, and JSON calls once the transcoder has rewritten them to gRPC.
            *({"name": f"gateway-{service.rsplit('.', 1)[1].lower()}",
               "match": {"prefix": f"/{service}/", "grpc": {}}, "route": to_gateway} for service in PUBLIC_SERVICES),
            # No other gRPC service is public (the gateway's health and reflection stay inside).
            {"name": "other-grpc", "match": {"prefix": "/", "grpc": {}},
             "direct_response": {"status": 404, "body": {"inline_string": LOCAL_REPLIES[404][1]}}},
            # JSON calls as they arrive. A route (not a direct response) so that CORS applies; the
            # transcoder answers 404 itself for a path that maps to no method, so none is forwarded as is.
            {"name": "json", "match": {"prefix": "/"}, "route": to_gateway},
        ],
    }
    if settings.cors_origins:
        virtual_host["typed_per_filter_config"] = {"envoy.filters.http.cors": _cors_policy(settings.cors_origins)}
    return {"name": "edge", "virtual_hosts": [virtual_host]}


def _local_reply_config() -> Json:
    """Replace the body of every local reply to an HTTP caller by a fixed JSON message.

    Answers the gateway gives (gRPC status turned into JSON by the transcoder) are not local
    replies and pass unchanged. Native gRPC callers keep Envoy's grpc-status and message; a
    transcoded request carries content-type application/grpc too, but also the original path."""
    native_grpc = {"and_filter": {"filters": [
        {"header_filter": {"header": {"name": "content-type", "string_match": {"prefix": "application/grpc"}}}},
        {"header_filter": {"header": {"name": ORIGINAL_PATH_HEADER, "present_match": True, "invert_match": True}}},
    ]}}
    mappers: list[Json] = [{"filter": native_grpc}]
    # OpenAI's routes answer in OpenAI's error shape (its clients raise the matching exception).
    openai_route = {"or_filter": {"filters": [
        {"header_filter": {"header": {"name": name, "string_match": {"safe_regex": {"regex": OPENAI_PATHS_PATTERN}}}}}
        for name in (":path", ORIGINAL_PATH_HEADER)
    ]}}
    mappers += [
        {"filter": {"and_filter": {"filters": [openai_route, _status_filter("EQ", status)]}},
         "body_format_override": _openai_reply(status, message)}
        for status, (_, message) in LOCAL_REPLIES.items()
    ]
    mappers += [
        {"filter": _status_filter("EQ", status), "body_format_override": _json_reply(code, message)}
        for status, (code, message) in LOCAL_REPLIES.items()
    ]
    mappers.append({"filter": _status_filter("GE", 0), "body_format_override": _json_reply(*FALLBACK_REPLY)})
    return {"mappers": mappers}


def _openai_reply(status: int, message: str) -> Json:
    kind = "rate_limit_error" if status == 429 else "server_error" if status >= 500 else "invalid_request_error"
    return {"json_format": {"error": {"message": message, "type": kind, "param": None, "code": None}}}


def _status_filter(op: str, status: int) -> Json:
    return {"status_code_filter": {"comparison": {"op": op, "value": {
        "default_value": status, "runtime_key": f"edge_local_reply.{op.lower()}_{status}"}}}}


def _json_reply(code: int, message: str) -> Json:
    return {"json_format": {"code": code, "message": message}}


def _file_log(path: str, fields: dict[str, str]) -> Json:
    return {
        "name": "envoy.access_loggers.file",
        "typed_config": {
            "@type": f"{_TYPE}extensions.access_loggers.file.v3.FileAccessLog",
            "path": path,
            "log_format": {
                "json_format": fields,
                "formatters": [{
                    "name": "envoy.formatter.req_without_query",
                    "typed_config": {"@type": f"{_TYPE}extensions.formatter.req_without_query.v3.ReqWithoutQuery"},
                }],
            },
        },
    }


def _gateway_cluster(settings: EnvoySettings) -> Json:
    host, port = split_address(settings.gateway_address)
    return {
        "name": GATEWAY_CLUSTER,
        "type": "STRICT_DNS",
        "dns_lookup_family": "V4_PREFERRED",
        "connect_timeout": CONNECT_TIMEOUT,
        "load_assignment": _endpoints(GATEWAY_CLUSTER, host, port),
        "typed_extension_protocol_options": _http2_upstream(),
        "circuit_breakers": {"thresholds": [{
            "priority": "DEFAULT",
            "max_connections": 1024,
            "max_pending_requests": 1024,
            "max_requests": 4096,
            "max_retries": 3,
        }]},
        # Eject only for transport failures (refused, reset, timeout): an error status the
        # gateway answers on purpose (e.g. a worker UNAVAILABLE) says nothing about its health.
        "outlier_detection": {
            "split_external_local_origin_errors": True,
            "consecutive_local_origin_failure": 5,
            "enforcing_consecutive_local_origin_failure": 100,
            "enforcing_consecutive_5xx": 0,
            "enforcing_consecutive_gateway_failure": 0,
            "enforcing_success_rate": 0,
            "interval": "5s",
            "base_ejection_time": "5s",
            "max_ejection_percent": 50,
        },
        **({"transport_socket": upstream_tls(settings)} if settings.tls.enabled else {}),
    }


def _collector_cluster(endpoint: str) -> Json:
    host, port = split_address(endpoint, DEFAULT_OTLP_PORT)
    cluster: Json = {
        "name": COLLECTOR_CLUSTER,
        "type": "STRICT_DNS",
        "dns_lookup_family": "V4_PREFERRED",
        "connect_timeout": CONNECT_TIMEOUT,
        "load_assignment": _endpoints(COLLECTOR_CLUSTER, host, port),
        "typed_extension_protocol_options": _http2_upstream(),
    }
    if endpoint.startswith("https://"):
        cluster["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": f"{_TYPE}extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                "sni": host,
            },
        }
    return cluster


def _endpoints(cluster: str, host: str, port: int) -> Json:
    return {
        "cluster_name": cluster,
        "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _socket_address(host, port)}}]}],
    }


def _http2_upstream() -> Json:
    return {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
        "@type": f"{_TYPE}extensions.upstreams.http.v3.HttpProtocolOptions",
        "explicit_http_config": {"http2_protocol_options": {
            "connection_keepalive": {"interval": "30s", "timeout": "10s"},
        }},
    }}


def _otlp_endpoint(settings: EnvoySettings) -> str:
    telemetry = settings.telemetry
    return telemetry.exporter_otlp_traces_endpoint or telemetry.exporter_otlp_endpoint or ""


def _tracing(settings: EnvoySettings) -> Json:
    """OpenTelemetry spans over OTLP/gRPC; W3C traceparent in and out (the tracer's propagation)."""
    return {
        "provider": {
            "name": "envoy.tracers.opentelemetry",
            "typed_config": {
                "@type": f"{_TYPE}config.trace.v3.OpenTelemetryConfig",
                "grpc_service": {"envoy_grpc": {"cluster_name": COLLECTOR_CLUSTER}, "timeout": "5s"},
                "service_name": settings.telemetry.service_name or "medai-envoy",
            },
        },
        "spawn_upstream_span": True,
    }


def _overload_manager() -> Json:
    return {"resource_monitors": [{
        "name": "envoy.resource_monitors.global_downstream_max_connections",
        "typed_config": {
            "@type": f"{_TYPE}extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig",
            "max_active_downstream_connections": 10_000,
        },
    }]}
