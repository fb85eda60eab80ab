"""The containers' health probe: `python -m libs.deploy.healthcheck SERVICE`; exit 0 when healthy.

A gRPC service is asked `grpc.health.v1.Health/Check` for the whole server ("") on the port its
own settings give (so a `*_PORT` override is followed), over mutual TLS with the service's own
certificate (a service admits its own identity to its health); `envoy` is asked `GET /ready` on its
admin port. The image HEALTHCHECK, the compose healthchecks, the Kubernetes probes and
`make compose-test` all run this.
"""
from __future__ import annotations

import sys
import urllib.error
import urllib.request

from libs.config import SERVICE_SETTINGS, EnvoySettings, ServiceSettings
from libs.tls.material import CertificateError, load_material

EDGE = "envoy"
TIMEOUT_SECONDS = 4.0


def _channel(settings: ServiceSettings):
    import grpc

    if not settings.tls.enabled:
        return grpc.insecure_channel(settings.dial_address())
    name = type(settings).service_name
    material = load_material(settings.tls.files(name, settings.app.state_dir))
    credentials = grpc.ssl_channel_credentials(material.ca, material.key, material.cert)
    return grpc.secure_channel(settings.dial_address(), credentials, options=[("grpc.ssl_target_name_override", name)])


def grpc_serving(settings: ServiceSettings, timeout: float = TIMEOUT_SECONDS) -> bool:
    """True when the service reports SERVING for the whole server."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    try:
        channel = _channel(settings)
    except CertificateError as error:
        print(f"healthcheck: {error}", file=sys.stderr)
        return False
    with channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def envoy_ready(admin_port: int, timeout: float = TIMEOUT_SECONDS) -> bool:
    """True when Envoy's admin answers 200 on /ready (LIVE, not draining)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/ready", timeout=timeout) as reply:
            return reply.status == 200
    except (urllib.error.URLError, OSError):
        return False


def healthy(service: str) -> bool:
    if service == EDGE:
        return envoy_ready(EnvoySettings().admin_port)
    if service not in SERVICE_SETTINGS:
        raise SystemExit(f"unknown service {service!r}: one of {EDGE}, {', '.join(SERVICE_SETTINGS)}")
    return grpc_serving(SERVICE_SETTINGS[service]())


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        raise SystemExit("usage: python -m libs.deploy.healthcheck SERVICE")
    return 0 if healthy(argv[0]) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
