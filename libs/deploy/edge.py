"""The Envoy image's entry point: libs.envoy's bootstrap plus a stats-only listener, then Envoy.

    python -m libs.deploy.edge [--stats-port 9902]

Envoy's admin keeps listening on 127.0.0.1 only (it can stop Envoy or fail its health checks).
Prometheus in another container or pod reaches Envoy's metrics through a listener on all interfaces
that forwards one path, GET /stats/prometheus, to the admin; every other path answers 404. With mesh
TLS the listener speaks HTTPS with Envoy's certificate and admits only clients whose certificate names
an identity of TLS_METRICS_CALLERS (Prometheus, the monitor), like every service's metrics endpoint.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from libs.config import EnvoySettings
from libs.envoy import envoy_command, render_config
from libs.envoy.tls import MESH_CERT_SECRET, downstream_tls, write_sds_files

DEFAULT_STATS_PORT = 9902
STATS_PATH = "/stats/prometheus"
ADMIN_CLUSTER = "envoy_admin"
_TYPE = "type.googleapis.com/envoy."
Json = dict[str, Any]


def stats_listener(host: str, port: int, transport_socket: Json | None = None) -> Json:
    """A listener that serves GET /stats/prometheus from the admin and nothing else."""
    routes = [{"match": {"path": STATS_PATH, "headers": [{"name": ":method", "string_match": {"exact": "GET"}}]},
               "route": {"cluster": ADMIN_CLUSTER}}]
    manager = {
        "@type": f"{_TYPE}extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "stats_listener",
        "route_config": {"name": "stats", "virtual_hosts": [{"name": "stats", "domains": ["*"], "routes": routes}]},
        "http_filters": [{"name": "envoy.filters.http.router",
                          "typed_config": {"@type": f"{_TYPE}extensions.filters.http.router.v3.Router"}}],
    }
    chain: Json = {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": manager}]}
    if transport_socket:
        chain["transport_socket"] = transport_socket
    return {"name": "stats", "address": {"socket_address": {"address": host, "port_value": port}},
            "filter_chains": [chain]}


def admin_cluster(admin_port: int) -> Json:
    endpoint = {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}}}
    return {"name": ADMIN_CLUSTER, "type": "STATIC", "connect_timeout": "1s",
            "load_assignment": {"cluster_name": ADMIN_CLUSTER, "endpoints": [{"lb_endpoints": [endpoint]}]}}


def add_stats_listener(config: Json, settings: EnvoySettings, port: int) -> Json:
    """The bootstrap with the stats listener (on the edge's public host) and the admin cluster added."""
    resources = config["static_resources"]
    tls = settings.tls
    # Where the edge's public listener is: its TLS one when it has a certificate (the plain one may stay on
    # loopback then, as in Kubernetes).
    host = settings.tls_host if settings.downstream_tls else settings.host
    socket = downstream_tls(settings, MESH_CERT_SECRET, client_identities=tls.metrics_callers) if tls.enabled else None
    resources["listeners"].append(stats_listener(host, port, socket))
    resources["clusters"].append(admin_cluster(settings.admin_port))
    return config


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stats-port", type=int, default=DEFAULT_STATS_PORT)
    args = parser.parse_args(argv)
    settings = EnvoySettings()
    config = add_stats_listener(render_config(settings), settings, args.stats_port)
    path = settings.config_path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_sds_files(settings)
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    command = envoy_command(path, settings.base_id)
    os.execv(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
