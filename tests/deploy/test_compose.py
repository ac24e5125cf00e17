"""deploy/compose.yaml (and its GPU override) checked without a Docker engine.

The files are validated against the compose-spec JSON schema that check-jsonschema
vendors, as written and after `${VAR}` interpolation with .env.example's values; then
what the schema cannot know: files the services mount exist, depends_on names real
services with conditions they can meet, `MLGATE_*` names are real settings, the `mlgate`
commands parse with the real CLI, every gateway is scraped, and the compose Prometheus
config passes `promtool check config` laid out as the container sees it.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # types-jsonschema is not a dependency
import pytest

from tests.deploy.deploy_support import (
    DEPLOY,
    REPO,
    InterpolationError,
    cli_usage_error,
    interpolate,
    load_yaml,
    read_env_file,
    unknown_settings,
    variables,
    volume_path,
)
from tests.support.prometheus import ensure_prometheus

COMPOSE = DEPLOY / "compose.yaml"
COMPOSE_GPU = DEPLOY / "compose.gpu.yaml"
ENV_EXAMPLE = DEPLOY / ".env.example"
SECRET_WORDS = ("PASSWORD", "TOKEN", "API_KEYS")


def _schema_validator() -> jsonschema.Draft202012Validator:
    vendored = resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads(vendored.joinpath("compose-spec.json").read_text())
    return jsonschema.Draft202012Validator(schema)


def _schema_errors(document: Any) -> list[str]:
    return [
        f"{'.'.join(map(str, error.path))}: {error.message}"
        for error in _schema_validator().iter_errors(document)
    ]


def _compose() -> dict[str, Any]:
    """compose.yaml as compose sees it with .env copied from .env.example."""
    loaded: dict[str, Any] = interpolate(load_yaml(COMPOSE), read_env_file(ENV_EXAMPLE))
    return loaded


def _services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = _compose()["services"]
    return services


def _is_mlgate(service: dict[str, Any]) -> bool:
    return "build" in service and service["build"]["dockerfile"] == "deploy/Dockerfile"


def _mlgate_services() -> dict[str, dict[str, Any]]:
    return {name: s for name, s in _services().items() if _is_mlgate(s)}


def _gateways() -> dict[str, dict[str, Any]]:
    return {name: s for name, s in _mlgate_services().items() if s["command"][0] == "serve"}


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> source (a volume name or a host path), short syntax."""
    found = {}
    for entry in service.get("volumes", []):
        source, target, *_ = entry.split(":")
        found[target] = source
    return found


def _arg(args: list[str], option: str) -> str:
    return args[args.index(option) + 1]


# --- schema --------------------------------------------------------------------------


@pytest.mark.parametrize("path", [COMPOSE, COMPOSE_GPU], ids=lambda p: p.name)
def test_validates_against_the_compose_spec(path: Path) -> None:
    raw = load_yaml(path)
    assert _schema_errors(raw) == []
    assert _schema_errors(interpolate(raw, read_env_file(ENV_EXAMPLE))) == []


def test_compose_spec_refuses_a_misspelt_key_and_a_bad_condition() -> None:
    misspelt = copy.deepcopy(load_yaml(COMPOSE))
    misspelt["services"]["monitor"]["depend_on"] = misspelt["services"]["monitor"].pop("depends_on")
    assert any("depend_on" in error for error in _schema_errors(misspelt))
    bad = copy.deepcopy(load_yaml(COMPOSE))
    bad["services"]["monitor"]["depends_on"]["postgres"]["condition"] = "service_ready"
    assert _schema_errors(bad)


def test_gpu_override_names_only_compose_services() -> None:
    override = load_yaml(COMPOSE_GPU)["services"]
    assert set(override) <= set(_services())
    with_gpus = {name for name, service in override.items() if "deploy" in service}
    assert with_gpus == {"gateway-a", "gateway-b", "triton"}
    for name in with_gpus:
        (device,) = override[name]["deploy"]["resources"]["reservations"]["devices"]
        assert device["capabilities"] == ["gpu"], name
    # Triton's models then run as GPU instances.
    command = override["triton-repo"]["command"]
    assert cli_usage_error(command) is None
    assert command[command.index("--instance-kind") + 1] == "gpu"
    assert command[:2] == _services()["triton-repo"]["command"][:2]


# --- variables and secrets ---------------------------------------------------------


def test_every_variable_has_a_default_or_an_example() -> None:
    used = variables(load_yaml(COMPOSE))
    example = read_env_file(ENV_EXAMPLE)
    for name, op in used.items():
        assert op in (":-", ":?"), f"${{{name}}} needs a default (:-) or an error (:?)"
        if op == ":?":
            assert name in example, f"{name} is required but not in .env.example"
    # Every example value that must be chosen says so.
    for name, value in example.items():
        if used.get(name) == ":?":
            assert value == "REPLACE_ME", name


def test_secrets_come_from_the_env_file_not_the_compose_file() -> None:
    raw = load_yaml(COMPOSE)
    for name, service in raw["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if any(word in key for word in SECRET_WORDS):
                assert str(value).startswith("${"), f"{name}: {key} is hard-coded"
    registry_url = raw["services"]["gateway-a"]["environment"]["MLGATE_REGISTRY_URL"]
    assert "${POSTGRES_PASSWORD:?" in registry_url
    # deploy/.env holds the real values and is never committed.
    assert ".env" in (DEPLOY / ".gitignore").read_text().split()


def test_interpolation_follows_compose_rules() -> None:
    env = {"SET": "x", "EMPTY": ""}
    assert interpolate("${SET:-d}/${EMPTY:-d}/${UNSET:-d}/${EMPTY-d}", env) == "x/d/d/"
    assert interpolate("$$SET ${SET} $SET ${SET:+alt} ${UNSET:+alt}", env) == "$SET x x alt "
    with pytest.raises(InterpolationError, match="EMPTY: set it"):
        interpolate({"a": ["${EMPTY:?set it}"]}, env)
    with pytest.raises(InterpolationError, match="POSTGRES_PASSWORD"):
        interpolate(load_yaml(COMPOSE), {})
    assert variables({"x": ["${A:-1} $B", {"y": "${C:?no} $$D"}]}) == {
        "A": ":-",
        "B": None,
        "C": ":?",
    }


# --- files, services and dependencies ---------------------------------------------------


def test_every_referenced_file_exists() -> None:
    for name, service in _services().items():
        if "build" in service:
            context = (DEPLOY / service["build"]["context"]).resolve()
            assert context == REPO, name
            assert (context / service["build"]["dockerfile"]).is_file(), name
        for target, source in _mounts(service).items():
            if source.startswith((".", "/")):
                assert (DEPLOY / source).exists(), f"{name}: {source} -> {target}"


def test_named_volumes_are_declared() -> None:
    declared = set(_compose()["volumes"])
    used = {
        source
        for service in _services().values()
        for source in _mounts(service).values()
        if not source.startswith((".", "/"))
    }
    assert used == declared


def test_depends_on_names_services_that_can_meet_the_condition() -> None:
    services = _services()
    for name, service in services.items():
        depends = service.get("depends_on", {})
        targets = depends if isinstance(depends, dict) else dict.fromkeys(depends)
        for target, spec in targets.items():
            assert target in services, f"{name} depends on unknown {target}"
            condition = (spec or {}).get("condition", "service_started")
            if condition == "service_healthy":
                assert "test" in services[target]["healthcheck"], f"{target} has no healthcheck"
            if condition == "service_completed_successfully":
                assert services[target]["restart"] == "no", f"{target} must run once"
            # A service in a profile cannot be waited for by one that always starts.
            if "profiles" in services[target]:
                assert services[target]["profiles"] == service.get("profiles"), name


def test_env_names_are_settings_of_mlgate() -> None:
    names = {key for service in _services().values() for key in service.get("environment", {})}
    assert {n for n in names if n.startswith("MLGATE_")}
    assert unknown_settings(names) == set()


def test_mlgate_services_run_real_cli_commands() -> None:
    commands = {}
    for name, service in _mlgate_services().items():
        assert cli_usage_error(service["command"]) is None, (name, service["command"])
        commands[name] = service["command"][0]
        if service["command"][0] != "serve":
            # The image's HEALTHCHECK polls HTTP, which only `serve` answers.
            assert service["healthcheck"] == {"disable": True}, name
    assert sorted(commands.values()) == sorted(
        ["serve", "serve", "monitor", "retrain", "triton-repo"]
    )


def test_gateways_are_distinct_log_writers_on_their_published_ports() -> None:
    gateways = _gateways()
    assert len(gateways) == 2
    replicas = [g["environment"]["MLGATE_LOG_REPLICA"] for g in gateways.values()]
    assert len(set(replicas)) == len(replicas)
    published: list[str] = []
    for name, gateway in gateways.items():
        assert gateway["environment"]["MLGATE_DRIFT_MONITOR"] == "external", name
        container_ports = {p.split(":")[1] for p in gateway["ports"]}
        assert _arg(gateway["command"], "--port") in container_ports, name
        assert _arg(gateway["command"], "--grpc-port") in container_ports, name
        published += [p.split(":")[0] for p in gateway["ports"]]
    assert len(set(published)) == len(published)


def test_every_mlgate_process_shares_one_registry_store_and_log() -> None:
    seen: dict[str, set[str]] = {"MLGATE_REGISTRY_URL": set(), "MLGATE_ARTIFACTS_URL": set()}
    for name, service in _mlgate_services().items():
        env = service["environment"]
        mounts = _mounts(service)
        shared = next(t for t, s in mounts.items() if s == "shared")
        artifacts = env["MLGATE_ARTIFACTS_URL"].removeprefix("file://")
        assert PurePosixPath(artifacts).is_relative_to(shared), name
        assert PurePosixPath(env["MLGATE_LOG_DIR"]).is_relative_to(shared), name
        assert env["MLGATE_REGISTRY_URL"].startswith("postgresql+psycopg://"), name
        assert "@postgres:5432/" in env["MLGATE_REGISTRY_URL"], name
        for key in seen:
            seen[key].add(env[key])
        if name in _gateways():
            assert "MLGATE_ADMIN_TOKEN" in env, name
        else:
            assert "MLGATE_ADMIN_TOKEN" not in env, f"{name} needs no admin token"
    assert all(len(values) == 1 for values in seen.values()), seen


def test_triton_serves_the_repository_triton_repo_writes() -> None:
    services = _services()
    writer, server = services["triton-repo"], services["triton"]
    assert "--force" in writer["command"]  # it runs again after each promotion
    written = volume_path(writer["command"][1], _mounts(writer))
    repository = next(a for a in server["command"] if a.startswith("--model-repository="))
    assert written == volume_path(repository.split("=", 1)[1], _mounts(server))
    # A folder inside the volume: the writer stages beside OUT and renames it into place.
    assert written[1] != "."
    assert server["image"].startswith("nvcr.io/nvidia/tritonserver:")
    host, port = _gateways()["gateway-a"]["environment"]["MLGATE_TRITON_URL"].split(":")
    assert host == "triton"
    assert port == "8001"  # Triton's gRPC port


# --- Prometheus and Grafana ------------------------------------------------------------


def _prometheus_layout(root: Path, service: dict[str, Any]) -> Path:
    """Copy the Prometheus service's bind-mounted files under `root` at their container
    paths; returns the config file's copy."""
    for target, source in _mounts(service).items():
        if source.startswith("."):
            copy_to = root / target.lstrip("/")
            copy_to.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(DEPLOY / source, copy_to)
    config = next(a for a in service["command"] if a.startswith("--config.file="))
    return root / config.split("=", 1)[1].lstrip("/")


def _promtool_check(config: Path) -> subprocess.CompletedProcess[str]:
    _, promtool = ensure_prometheus()
    return subprocess.run(
        [str(promtool), "check", "config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_promtool_accepts_the_compose_prometheus_config(tmp_path: Path) -> None:
    config = _prometheus_layout(tmp_path, _services()["prometheus"])
    done = _promtool_check(config)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 1 rule files found" in done.stdout


def test_promtool_fails_when_the_rules_are_not_mounted(tmp_path: Path) -> None:
    service = copy.deepcopy(_services()["prometheus"])
    service["volumes"] = [v for v in service["volumes"] if "rules.yml" not in v]
    done = _promtool_check(_prometheus_layout(tmp_path, service))
    assert done.returncode != 0
    assert "rules.yml" in done.stdout + done.stderr


def test_prometheus_scrapes_every_gateway() -> None:
    service = _services()["prometheus"]
    config = load_yaml(DEPLOY / _mounts(service)["/etc/prometheus/prometheus.yml"])
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    targets = {t for group in job["static_configs"] for t in group["targets"]}
    expected = {f"{name}:{_arg(g['command'], '--port')}" for name, g in _gateways().items()}
    assert targets == expected


def test_grafana_provisions_the_prometheus_service_and_the_dashboard() -> None:
    services = _services()
    grafana = _mounts(services["grafana"])
    provisioning = DEPLOY / grafana["/etc/grafana/provisioning"]
    (datasource,) = load_yaml(provisioning / "datasources" / "prometheus.yml")["datasources"]
    port = services["prometheus"]["ports"][0].split(":")[1]
    assert datasource["url"] == f"http://prometheus:{port}"
    assert datasource["isDefault"] is True
    dashboard = json.loads((DEPLOY / "grafana" / "mlgate.json").read_text())
    variable = next(v for v in dashboard["templating"]["list"] if v["name"] == "DS_PROMETHEUS")
    assert datasource["type"] == variable["query"]
    (provider,) = load_yaml(provisioning / "dashboards" / "mlgate.yml")["providers"]
    mounted = next(t for t, s in grafana.items() if s.endswith("mlgate.json"))
    assert PurePosixPath(mounted).parent == PurePosixPath(provider["options"]["path"])
    assert provider["type"] == "file"


def test_volume_path_takes_the_deepest_mount() -> None:
    mounts = {"/models": "outer", "/models/cache": "inner"}
    assert volume_path("/models/repository", mounts) == ("outer", "repository")
    assert volume_path("/models/cache/x", mounts) == ("inner", "x")
    assert volume_path("/models", mounts) == ("outer", ".")
    with pytest.raises(ValueError, match="on no mounted volume"):
        volume_path("/data", mounts)
