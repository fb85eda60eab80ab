"""The NetworkPolicies, evaluated: a small model of Kubernetes' rules (a pod selected by a policy of a
direction is isolated in it; a connection needs the source's egress and the destination's ingress)
applied to the rendered pods, every pair and port of them, and the peers outside the mesh."""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from libs.config.services import DEFAULT_PORTS
from tests.unit.deploy.artifacts import EDGE, OVERLAYS, SERVICES, Doc, by_kind, container, pod_labels, rendered

NAMESPACE = "medai"
TARGETS = ("base", *(f"overlays/{name}" for name in OVERLAYS))


@dataclass(frozen=True)
class Pod:
    name: str
    namespace: str
    labels: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)  # named container ports

    def __hash__(self) -> int:
        return hash((self.name, self.namespace))


# Peers outside the mesh: a client behind the ingress, Prometheus, DNS, the OTLP collector, the stores.
CLIENT = Pod("ingress-controller", "ingress-nginx", {"app": "ingress"})
PROMETHEUS = Pod("prometheus", "monitoring", {"app": "prometheus"})
DNS = Pod("coredns", "kube-system", {"k8s-app": "kube-dns"})
COLLECTOR = Pod("otel-collector", "observability", {"app": "collector"})
DATABASE = Pod("postgres", "databases", {"app": "postgresql"})
CACHE = Pod("redis", "databases", {"app": "redis"})
INTERNET = Pod("somewhere", "", {})


def selects(selector: Doc | None, labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels, matchExpressions In/NotIn/Exists/DoesNotExist) against labels."""
    if selector is None:
        return True
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        matched = {"In": labels.get(key) in values, "NotIn": labels.get(key) not in values,
                   "Exists": key in labels, "DoesNotExist": key not in labels}[operator]
        if not matched:
            return False
    return True


def peer_matches(peer: Doc, pod: Pod, policy_namespace: str) -> bool:
    if "ipBlock" in peer:
        return pod.namespace == ""  # only addresses outside the cluster's pods
    if not pod.namespace:
        return False
    namespace_ok = (selects(peer["namespaceSelector"], {"kubernetes.io/metadata.name": pod.namespace})
                    if "namespaceSelector" in peer else pod.namespace == policy_namespace)
    return namespace_ok and selects(peer.get("podSelector"), pod.labels)


def port_matches(rule_ports: list[Doc] | None, destination: Pod, port: int, protocol: str) -> bool:
    if not rule_ports:
        return True
    for entry in rule_ports:
        if entry.get("protocol", "TCP") != protocol:
            continue
        wanted = entry.get("port")
        number = destination.ports.get(wanted) if isinstance(wanted, str) else wanted
        if wanted is None or number == port:
            return True
    return False


class Policies:
    def __init__(self, documents: tuple[Doc, ...]) -> None:
        self.policies = list(by_kind(documents, "NetworkPolicy").values())

    def _selecting(self, pod: Pod, direction: str) -> list[Doc]:
        return [p for p in self.policies if pod.namespace == NAMESPACE and direction in p["spec"]["policyTypes"]
                and selects(p["spec"]["podSelector"], pod.labels)]

    def ingress_allows(self, source: Pod, destination: Pod, port: int, protocol: str = "TCP") -> bool:
        selecting = self._selecting(destination, "Ingress")
        if not selecting:
            return True
        return any((not rule.get("from") or any(peer_matches(peer, source, NAMESPACE) for peer in rule["from"]))
                   and port_matches(rule.get("ports"), destination, port, protocol)
                   for policy in selecting for rule in policy["spec"].get("ingress", []))

    def egress_allows(self, source: Pod, destination: Pod, port: int, protocol: str = "TCP") -> bool:
        selecting = self._selecting(source, "Egress")
        if not selecting:
            return True
        return any((not rule.get("to") or any(peer_matches(peer, destination, NAMESPACE) for peer in rule["to"]))
                   and port_matches(rule.get("ports"), destination, port, protocol)
                   for policy in selecting for rule in policy["spec"].get("egress", []))

    def allows(self, source: Pod, destination: Pod, port: int, protocol: str = "TCP") -> bool:
        return (self.egress_allows(source, destination, port, protocol)
                and self.ingress_allows(source, destination, port, protocol))


def mesh_pods(documents: tuple[Doc, ...]) -> dict[str, Pod]:
    return {name: Pod(name, NAMESPACE, pod_labels(deployment),
                      {port["name"]: port["containerPort"] for port in container(deployment)["ports"]})
            for name, deployment in by_kind(documents, "Deployment").items()}


def grpc(name: str) -> int:
    return DEFAULT_PORTS[name][0]


def metrics(name: str) -> int:
    return DEFAULT_PORTS[name][1]


def intended_mesh_flows() -> set[tuple[str, str, int]]:
    """(from, to, port) the mesh needs between its own pods, and nothing more."""
    flows = {(EDGE, "gateway", grpc("gateway")), ("gateway", "compliance", grpc("compliance")),
             ("gateway", "monitor", grpc("monitor"))}
    flows |= {("compliance", worker, grpc(worker)) for worker in ("generation", "embedding", "conversation")}
    flows |= {("monitor", service, port) for service in SERVICES for port in (grpc(service), metrics(service))}
    return flows


@pytest.fixture(params=TARGETS)
def rendered_target(request: pytest.FixtureRequest) -> tuple[Policies, dict[str, Pod]]:
    documents = rendered(request.param)
    return Policies(documents), mesh_pods(documents)


def test_the_mesh_talks_along_its_call_graph_only(rendered_target: tuple[Policies, dict[str, Pod]]) -> None:
    policies, pods = rendered_target
    intended = intended_mesh_flows()
    for source in pods.values():
        for destination in pods.values():
            for port in destination.ports.values():
                allowed = policies.allows(source, destination, port)
                expected = (source.name, destination.name, port) in intended
                assert allowed == expected, f"{source.name} -> {destination.name}:{port} allowed={allowed}"


def test_anyone_reaches_envoy_and_nothing_else(rendered_target: tuple[Policies, dict[str, Pod]]) -> None:
    policies, pods = rendered_target
    for client in (CLIENT, INTERNET, PROMETHEUS, Pod("other-app", NAMESPACE, {"app": "other"})):
        assert policies.ingress_allows(client, pods[EDGE], 8443), client.name  # Envoy's TLS listener
        assert not policies.ingress_allows(client, pods[EDGE], 8080), client.name  # plain: the pod's loopback only
        for name in SERVICES:
            assert not policies.ingress_allows(client, pods[name], grpc(name)), f"{client.name} -> {name}"


def test_prometheus_scrapes_every_metrics_port_only(rendered_target: tuple[Policies, dict[str, Pod]]) -> None:
    policies, pods = rendered_target
    for name in SERVICES:
        assert policies.ingress_allows(PROMETHEUS, pods[name], metrics(name)), name
        assert not policies.ingress_allows(PROMETHEUS, pods[name], grpc(name)), name
    assert policies.ingress_allows(PROMETHEUS, pods[EDGE], 9902), "Envoy's stats listener"
    assert not policies.ingress_allows(PROMETHEUS, pods[EDGE], 9901), "Envoy's admin stays private"
    intruder = Pod("prometheus", "default", {"app": "prometheus"})
    assert not policies.ingress_allows(intruder, pods["gateway"], metrics("gateway")), "only the monitoring namespace"


def test_egress_leaves_the_mesh_for_dns_stores_and_traces_only(
        rendered_target: tuple[Policies, dict[str, Pod]]) -> None:
    policies, pods = rendered_target
    store_users = {"gateway", "compliance", "conversation"}
    for pod in pods.values():
        assert policies.egress_allows(pod, DNS, 53, "UDP") and policies.egress_allows(pod, DNS, 53, "TCP"), pod.name
        assert policies.egress_allows(pod, COLLECTOR, 4317), f"{pod.name} cannot export traces"
        assert not policies.egress_allows(pod, COLLECTOR, 4318), pod.name
        for store, port in ((DATABASE, 5432), (CACHE, 6379)):
            assert policies.egress_allows(pod, store, port) == (pod.name in store_users), f"{pod.name} -> {store.name}"
        for anywhere, port in ((INTERNET, 443), (INTERNET, 80), (DNS, 443), (CLIENT, 8080)):
            assert not policies.egress_allows(pod, anywhere, port), f"{pod.name} -> {anywhere.name}:{port}"


def test_every_serving_port_has_an_ingress_rule(rendered_target: tuple[Policies, dict[str, Pod]]) -> None:
    policies, pods = rendered_target
    peers = [*pods.values(), CLIENT, PROMETHEUS, INTERNET]
    for pod in pods.values():
        for name, port in pod.ports.items():
            assert any(policies.ingress_allows(peer, pod, port) for peer in peers), f"{pod.name}:{name} admits no one"


def test_everything_is_denied_by_default(rendered_target: tuple[Policies, dict[str, Pod]]) -> None:
    policies, _ = rendered_target
    newcomer = Pod("newcomer", NAMESPACE, {"app.kubernetes.io/name": "newcomer"}, {"http": 8000})
    assert not policies.ingress_allows(CLIENT, newcomer, 8000)
    assert not policies.egress_allows(newcomer, INTERNET, 443)
    assert policies.egress_allows(newcomer, DNS, 53, "UDP")


def test_the_model_can_fail() -> None:
    """The evaluator itself: an allow-all egress policy opens egress, a missing ingress rule closes a port."""
    open_policy = {"kind": "NetworkPolicy", "metadata": {"name": "open"},
                   "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{}]}}
    closed = {"kind": "NetworkPolicy", "metadata": {"name": "closed"},
              "spec": {"podSelector": {"matchLabels": {"a": "b"}}, "policyTypes": ["Ingress"]}}
    policies = Policies((open_policy, closed))
    pod = Pod("x", NAMESPACE, {"a": "b"}, {"http": 80})
    assert policies.egress_allows(pod, INTERNET, 443)
    assert not policies.ingress_allows(CLIENT, pod, 80)
