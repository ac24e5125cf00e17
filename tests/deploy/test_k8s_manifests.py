"""deploy/k8s: every manifest against the Kubernetes JSON schemas, and against mlgate.

No cluster runs here. What can be checked without one is checked: each object against
the Kubernetes 1.31 schemas kubernetes-validate ships (strict: unknown fields fail), the
two CRD-style kinds against small schemas in tests/deploy/schemas/, and what ties the
manifests together and to the code: selectors, ports and probes, volumes, the
`MLGATE_*` names (against the settings classes) and the `mlgate` argument lists
(against the typer app). `kubectl kustomize` renders the kustomization where kubectl is
installed.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # types-jsonschema is not a dependency
import kubernetes_validate  # type: ignore[import-untyped]  # no stubs, no py.typed
import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML ships no stubs

from tests.deploy.deploy_support import (
    DEPLOY,
    cli_usage_error,
    load_yaml,
    load_yaml_all,
    unknown_settings,
    volume_path,
)
from tests.deploy.test_prometheus_rules import CONTRACT_METRICS

K8S = DEPLOY / "k8s"
KUSTOMIZATION = K8S / "kustomization.yaml"
SCHEMAS = Path(__file__).resolve().parent / "schemas"
K8S_VERSION = "1.31"
# Kinds the Kubernetes schemas do not have, each with its own schema here.
CRD_SCHEMAS = {"ServiceMonitor": SCHEMAS / "servicemonitor.json"}
MLGATE_IMAGE = "mlgate"
QUEUE_DEPTH_BLOCK = re.compile(
    r"^ *# BEGIN queue-depth metric\n(?P<body>.*?)^ *# END queue-depth metric", re.M | re.S
)


def _objects() -> list[dict[str, Any]]:
    return [doc for path in _resource_files() for doc in load_yaml_all(path)]


def _resource_files() -> list[Path]:
    return [K8S / name for name in load_yaml(KUSTOMIZATION)["resources"]]


def _of_kind(kind: str) -> list[dict[str, Any]]:
    return [obj for obj in _objects() if obj["kind"] == kind]


def _named(kind: str, name: str) -> dict[str, Any]:
    (found,) = [obj for obj in _of_kind(kind) if obj["metadata"]["name"] == name]
    return found


def _pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    for deployment in _of_kind("Deployment"):
        yield deployment["metadata"]["name"], deployment["spec"]["template"]["spec"]


def _containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def _all_containers() -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    for name, spec in _pod_specs():
        for container in _containers(spec):
            yield name, spec, container


def _is_mlgate(container: dict[str, Any]) -> bool:
    return bool(container["image"].rsplit(":", 1)[0] == MLGATE_IMAGE)


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def _validator(schema_file: Path) -> jsonschema.Draft202012Validator:
    schema = json.loads(schema_file.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _arg_value(args: list[str], option: str) -> str:
    return args[args.index(option) + 1]


# --- files and schemas -------------------------------------------------------------------


def test_every_manifest_is_in_the_kustomization() -> None:
    listed = load_yaml(KUSTOMIZATION)["resources"]
    on_disk = sorted(p.name for p in K8S.glob("*.yaml") if p != KUSTOMIZATION)
    assert sorted(listed) == on_disk
    assert len(listed) == len(set(listed))


def test_kustomization_matches_its_schema() -> None:
    errors = list(_validator(SCHEMAS / "kustomization.json").iter_errors(load_yaml(KUSTOMIZATION)))
    assert [error.message for error in errors] == []


def test_kustomization_schema_refuses_a_misspelt_field() -> None:
    broken = load_yaml(KUSTOMIZATION)
    broken["resource"] = broken.pop("resources")
    assert list(_validator(SCHEMAS / "kustomization.json").iter_errors(broken))


def test_every_object_validates_against_the_kubernetes_schemas() -> None:
    no_schema: set[str] = set()
    failures: dict[str, str] = {}
    for obj in _objects():
        label = f"{obj['kind']}/{obj['metadata']['name']}"
        try:
            assert kubernetes_validate.validate(obj, K8S_VERSION, strict=True) == K8S_VERSION
        except kubernetes_validate.utils.SchemaNotFoundError:
            no_schema.add(obj["kind"])
        except kubernetes_validate.ValidationError as error:
            failures[label] = f"{'.'.join(map(str, error.path))}: {error.message}"
    assert failures == {}
    # Only the kinds this file has its own schema for go unchecked above.
    assert no_schema == set(CRD_SCHEMAS)


def test_strict_validation_refuses_a_misspelt_field_and_a_wrong_type() -> None:
    gateway = _named("Deployment", "mlgate-gateway")
    misspelt = copy.deepcopy(gateway)
    container = misspelt["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(misspelt, K8S_VERSION, strict=True)
    wrong = copy.deepcopy(gateway)
    wrong["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError, match="not of type"):
        kubernetes_validate.validate(wrong, K8S_VERSION, strict=True)


@pytest.mark.parametrize("kind", sorted(CRD_SCHEMAS))
def test_crd_kinds_match_their_schemas(kind: str) -> None:
    validator = _validator(CRD_SCHEMAS[kind])
    objects = _of_kind(kind)
    assert objects
    for obj in objects:
        assert [error.message for error in validator.iter_errors(obj)] == []


def test_servicemonitor_schema_refuses_what_the_crd_refuses() -> None:
    validator = _validator(CRD_SCHEMAS["ServiceMonitor"])
    monitor = _of_kind("ServiceMonitor")[0]
    misspelt = copy.deepcopy(monitor)
    misspelt["spec"]["endpoint"] = misspelt["spec"].pop("endpoints")
    bad_interval = copy.deepcopy(monitor)
    bad_interval["spec"]["endpoints"][0]["interval"] = "15 seconds"
    assert list(validator.iter_errors(misspelt))
    assert list(validator.iter_errors(bad_interval))


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_kustomize_renders_every_object_into_the_namespace() -> None:
    kubectl = shutil.which("kubectl")
    assert kubectl is not None
    done = subprocess.run(
        [kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    rendered = [doc for doc in yaml.safe_load_all(done.stdout) if doc]
    assert len(rendered) == len(_objects())
    namespace = load_yaml(KUSTOMIZATION)["namespace"]
    for obj in rendered:
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == namespace, obj["metadata"]["name"]
    (image,) = load_yaml(KUSTOMIZATION)["images"]
    rendered_images = {
        c["image"]
        for obj in rendered
        if obj["kind"] == "Deployment"
        for c in _containers(obj["spec"]["template"]["spec"])
        if c["image"].startswith(image["newName"] + ":")
    }
    assert rendered_images == {f"{image['newName']}:{image['newTag']}"}


# --- how the objects fit together ----------------------------------------------------


def test_every_service_selects_a_deployment_and_its_ports() -> None:
    deployments = _of_kind("Deployment")
    for service in _of_kind("Service"):
        selector = service["spec"]["selector"]
        (target,) = [
            d
            for d in deployments
            if _selects(selector, d["spec"]["template"]["metadata"]["labels"])
        ]
        # A Deployment's own selector must match its pods too, or it owns none.
        assert _selects(target["spec"]["selector"]["matchLabels"], selector)
        ports = {
            p["name"]: p["containerPort"]
            for c in target["spec"]["template"]["spec"]["containers"]
            for p in c.get("ports", [])
        }
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, (service["metadata"]["name"], port)
            assert ports[port["targetPort"]] == port["port"], (service["metadata"]["name"], port)


def test_pdb_hpa_and_servicemonitor_aim_at_the_gateway() -> None:
    gateway = _named("Deployment", "mlgate-gateway")
    labels = gateway["spec"]["template"]["metadata"]["labels"]
    (pdb,) = _of_kind("PodDisruptionBudget")
    assert _selects(pdb["spec"]["selector"]["matchLabels"], labels)
    (hpa,) = _of_kind("HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "mlgate-gateway")
    # A drain can always proceed: the budget leaves room below the smallest scale.
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]
    assert gateway["spec"]["replicas"] >= hpa["spec"]["minReplicas"]
    (monitor,) = _of_kind("ServiceMonitor")
    service = _named("Service", "mlgate-gateway")
    assert _selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    service_ports = {port["name"] for port in service["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in service_ports
        assert endpoint["path"] == "/metrics"


def test_queue_depth_metric_is_valid_when_uncommented() -> None:
    text = (K8S / "gateway-hpa.yaml").read_text()
    match = QUEUE_DEPTH_BLOCK.search(text)
    assert match is not None, "the commented queue-depth metric block is missing"
    uncommented = re.sub(r"^( *)# ?", r"\1", match["body"], flags=re.M)
    enabled = yaml.safe_load(text[: match.start()] + uncommented + text[match.end() :])
    assert kubernetes_validate.validate(enabled, K8S_VERSION, strict=True) == K8S_VERSION
    as_shipped = load_yaml(K8S / "gateway-hpa.yaml")["spec"]["metrics"]
    assert enabled["spec"]["metrics"][: len(as_shipped)] == as_shipped
    (pods,) = enabled["spec"]["metrics"][len(as_shipped) :]
    assert pods["type"] == "Pods"
    name = pods["pods"]["metric"]["name"]
    assert name == "mlgate_queue_depth"
    assert CONTRACT_METRICS[name] == "gauge"


def test_probes_and_serve_ports_agree() -> None:
    for name, _, container in _all_containers():
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            if probe in container:
                port = container[probe]["httpGet"]["port"]
                assert port in ports or port in ports.values(), (name, probe, port)
        if _is_mlgate(container) and container["args"][0] == "serve":
            args = container["args"]
            assert int(_arg_value(args, "--port")) == ports["http"]
            assert int(_arg_value(args, "--grpc-port")) == ports["grpc"]
            assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
            assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"


def test_every_pod_is_restricted_non_root_with_a_read_only_root() -> None:
    for name, spec, container in _all_containers():
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, name
        assert pod["seccompProfile"]["type"] == "RuntimeDefault", name
        assert spec["automountServiceAccountToken"] is False, name
        own = container["securityContext"]
        user = own.get("runAsUser", pod.get("runAsUser"))
        assert isinstance(user, int), (name, container["name"])
        assert user > 0, (name, container["name"])
        if _is_mlgate(container):
            assert user == 10001, (name, container["name"])
        assert own["allowPrivilegeEscalation"] is False, (name, container["name"])
        assert own["capabilities"]["drop"] == ["ALL"], (name, container["name"])
        assert own["readOnlyRootFilesystem"] is True, (name, container["name"])
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]], (name, container["name"])
        assert container["resources"]["requests"]["memory"], (name, container["name"])
        assert container["resources"]["limits"]["memory"], (name, container["name"])


def test_volume_mounts_name_declared_volumes_and_claims() -> None:
    claims = {claim["metadata"]["name"]: claim for claim in _of_kind("PersistentVolumeClaim")}
    for name, spec, container in _all_containers():
        volumes = {v["name"]: v for v in spec["volumes"]}
        for mount in container.get("volumeMounts", []):
            assert mount["name"] in volumes, (name, container["name"], mount["name"])
        for volume in volumes.values():
            if "persistentVolumeClaim" in volume:
                claim = claims[volume["persistentVolumeClaim"]["claimName"]]
                # Several pods on several nodes mount it at once.
                assert claim["spec"]["accessModes"] == ["ReadWriteMany"]


def test_shared_paths_lie_on_the_shared_volume() -> None:
    config = _named("ConfigMap", "mlgate-config")["data"]
    assert config["MLGATE_ARTIFACTS_URL"].startswith("file:///")
    artifacts = config["MLGATE_ARTIFACTS_URL"].removeprefix("file://")
    for name, spec, container in _all_containers():
        if not _is_mlgate(container):
            continue
        volumes = {v["name"]: v for v in spec["volumes"]}
        (shared,) = [
            m for m in container["volumeMounts"] if "persistentVolumeClaim" in volumes[m["name"]]
        ]
        root = shared["mountPath"].rstrip("/") + "/"
        assert config["MLGATE_LOG_DIR"].startswith(root), name
        assert artifacts.startswith(root), name
        home = {m["mountPath"] for m in container["volumeMounts"]}
        assert config["MLGATE_HOME"] in home, (name, "MLGATE_HOME must be a writable volume")


def test_env_names_are_settings_of_mlgate() -> None:
    names = set(_named("ConfigMap", "mlgate-config")["data"])
    names |= set(_named("Secret", "mlgate-secrets")["stringData"])
    for _, _, container in _all_containers():
        names |= {entry["name"] for entry in container.get("env", [])}
        for source in container.get("envFrom", []):
            ref = source.get("configMapRef") or source.get("secretRef")
            kind = "ConfigMap" if "configMapRef" in source else "Secret"
            _named(kind, ref["name"])  # exists
    assert {n for n in names if n.startswith("MLGATE_")}
    assert unknown_settings(names) == set()


def test_settings_check_reports_a_name_no_class_reads() -> None:
    assert unknown_settings({"MLGATE_LOG_DIRECTORY", "MLGATE_LOG_DIR", "HOME"}) == {
        "MLGATE_LOG_DIRECTORY"
    }


def test_gateway_log_replica_is_the_pod_name() -> None:
    gateway = _named("Deployment", "mlgate-gateway")["spec"]["template"]["spec"]
    env = {entry["name"]: entry for entry in gateway["containers"][0]["env"]}
    assert env["MLGATE_LOG_REPLICA"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


def test_mlgate_containers_run_real_cli_commands() -> None:
    commands = set()
    for name, _, container in _all_containers():
        if not _is_mlgate(container):
            continue
        assert "command" not in container, (name, "the image's ENTRYPOINT is mlgate")
        assert cli_usage_error(container["args"]) is None, (name, container["args"])
        commands.add(container["args"][0])
    assert commands == {"serve", "monitor", "retrain", "triton-repo"}


def test_cli_check_reports_what_does_not_parse() -> None:
    assert cli_usage_error(["monitr"]) == "no such command: 'monitr'"
    assert "No such option: --wroker" in str(cli_usage_error(["retrain", "--wroker"]))
    assert "Invalid value for '--port'" in str(cli_usage_error(["serve", "--port", "http"]))
    assert "extra argument" in str(cli_usage_error(["monitor", "now"]))
    assert cli_usage_error([]) == "no command given"


def test_images_are_pinned_and_mlgate_matches_the_kustomization() -> None:
    (image,) = load_yaml(KUSTOMIZATION)["images"]
    assert image["name"] == MLGATE_IMAGE
    for name, _, container in _all_containers():
        repo, _, tag = container["image"].rpartition(":")
        assert repo, (name, container["image"])
        assert tag, (name, container["image"])
        assert tag != "latest", (name, container["image"])
        assert container["imagePullPolicy"] == "IfNotPresent", name
        if _is_mlgate(container):
            assert tag == image["newTag"], (name, container["image"])


def test_one_monitor_replaced_by_recreate() -> None:
    monitor = _named("Deployment", "mlgate-monitor")
    assert monitor["spec"]["replicas"] == 1
    assert monitor["spec"]["strategy"] == {"type": "Recreate"}
    assert _named("ConfigMap", "mlgate-config")["data"]["MLGATE_DRIFT_MONITOR"] == "external"


def test_triton_serves_the_repository_its_init_container_writes() -> None:
    spec = _named("Deployment", "mlgate-triton")["spec"]["template"]["spec"]
    (writer,) = spec["initContainers"]
    (server,) = spec["containers"]
    assert writer["args"][0] == "triton-repo"
    assert "--force" in writer["args"]  # init containers rerun into the same emptyDir
    written = volume_path(
        writer["args"][1], {m["mountPath"]: m["name"] for m in writer["volumeMounts"]}
    )
    repository = next(a for a in server["args"] if a.startswith("--model-repository="))
    read = volume_path(
        repository.split("=", 1)[1], {m["mountPath"]: m["name"] for m in server["volumeMounts"]}
    )
    assert written == read
    # A folder inside the volume: the writer stages beside OUT and renames it into place.
    assert written[1] != "."
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert "emptyDir" in volumes[written[0]]
    # The gateways forward to the Service's gRPC port.
    host, port = _named("ConfigMap", "mlgate-config")["data"]["MLGATE_TRITON_URL"].split(":")
    service = _named("Service", host)
    grpc = next(p for p in service["spec"]["ports"] if p["name"] == "grpc")
    assert grpc["port"] == int(port)


def test_secret_holds_only_marked_placeholders() -> None:
    secret = _named("Secret", "mlgate-secrets")
    assert "data" not in secret
    for key, value in secret["stringData"].items():
        assert "REPLACE_ME" in value, f"{key} looks like a real credential"
    assert secret["stringData"]["MLGATE_REGISTRY_URL"].startswith("postgresql+psycopg://")
