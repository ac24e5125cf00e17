"""deploy/Dockerfile and .dockerignore, read with dockerfile-parse; no Docker engine here.

Structure: three named stages (the dashboard's node build, the Python builder, a slim
runtime), a non-root final user, a HEALTHCHECK, the entry point and ports the manifests
rely on, pins in step with pyproject.toml, and every COPY source present in the
repository and not ignored by .dockerignore. The builder's install step is run for real
as a shell script, with a stand-in `pip` that records what it is asked to install, for
each VARIANT: that is how the build argument is shown to switch the runtime packages.
The HEALTHCHECK command itself runs against a real gateway in test_health_probes.py.
"""

from __future__ import annotations

import os
import re
import shlex
import stat
import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser  # type: ignore[import-untyped]  # no stubs
from packaging.requirements import Requirement

from tests.deploy.deploy_support import DEPLOY, REPO, cli_usage_error

DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
PYPROJECT = REPO / "pyproject.toml"


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)
    args: dict[str, str] = field(default_factory=dict)

    def values(self, instruction: str) -> list[str]:
        return [value for kind, value in self.instructions if kind == instruction]


def _stages() -> list[Stage]:
    parser = DockerfileParser(path=str(DOCKERFILE))
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for item in parser.structure:
        kind, value = item["instruction"], item["value"]
        if kind == "COMMENT":
            continue
        if kind == "FROM":
            image, _, name = value.partition(" AS ")
            for key, default in global_args.items():
                image = image.replace("${" + key + "}", default)
            stages.append(Stage(name=name.strip(), base=image.strip()))
        elif not stages:
            assert kind == "ARG", f"only ARG may come before the first FROM, not {kind}"
            key, _, default = value.partition("=")
            global_args[key] = default
        else:
            stages[-1].instructions.append((kind, value))
            if kind == "ARG":
                key, _, default = value.partition("=")
                stages[-1].args[key] = default
    return stages


def _stage(name: str) -> Stage:
    (found,) = [stage for stage in _stages() if stage.name == name]
    return found


def _final() -> Stage:
    return _stages()[-1]


def _exec_form(value: str) -> list[str]:
    """The JSON array of an exec-form instruction (CMD ["a", "b"])."""
    import json

    start = value.index("[")
    parsed: list[str] = json.loads(value[start:])
    return parsed


def _copy_sources(value: str) -> list[str]:
    parts = [p for p in shlex.split(value) if not p.startswith("--")]
    return parts[:-1]


# --- .dockerignore -----------------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's pattern syntax (Go's filepath.Match plus **), as a regex."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")  # any number of folders, none included
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether the build context leaves `path` (relative, '/'-separated) out: the last
    pattern matching the path or one of its parent folders decides; '!' re-includes."""
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for raw in patterns:
        negated = raw.startswith("!")
        pattern = os.path.normpath(raw.removeprefix("!").strip("/"))
        regex = _pattern_regex(pattern)
        if any(regex.match(candidate) for candidate in candidates):
            excluded = not negated
    return excluded


def _dockerignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_dockerignore_matcher_follows_docker_rules() -> None:
    patterns = ["*", "!src", "**/__pycache__", "src/gen", "!src/gen/keep.txt"]
    assert dockerignored("README.md", patterns)
    assert not dockerignored("src/a.py", patterns)
    assert dockerignored("src/pkg/__pycache__/a.pyc", patterns)
    assert dockerignored("src/gen/x.js", patterns)
    assert not dockerignored("src/gen/keep.txt", patterns)
    assert dockerignored("pkg/__pycache__", ["**/__pycache__"])
    assert dockerignored("__pycache__/x.pyc", ["**/__pycache__"])
    # '?' is one character; a matching folder takes its contents with it.
    assert not dockerignored("src/ab", ["src/?"])
    assert dockerignored("src/a/b", ["src/?"])


def test_dockerignore_keeps_sources_in_and_bulk_out() -> None:
    patterns = _dockerignore_patterns()
    for bulk in (
        ".venv/bin/python",
        ".venv-peers/bentoml/bin/python",
        ".git/HEAD",
        ".mlgate/registry.db",
        "services/gateway/dashboard/node_modules/uplot/package.json",
        "services/gateway/dashboard/dist/index.html",
        "registry/__pycache__/store.cpython-311.pyc",
        "tests/conftest.py",
        "load_tests/results/2026-11-23-batching.json",
    ):
        assert dockerignored(bulk, patterns), bulk
    for needed in ("pyproject.toml", "README.md", "registry/store.py", "services/cli/entry.py"):
        assert not dockerignored(needed, patterns), needed


def test_copy_sources_exist_and_reach_the_build() -> None:
    patterns = _dockerignore_patterns()
    stage_names = {stage.name for stage in _stages()}
    copied = 0
    for stage in _stages():
        for value in stage.values("COPY"):
            if "--from=" in value:
                source_stage = re.search(r"--from=(\S+)", value)
                assert source_stage is not None
                assert source_stage[1] in stage_names, value
                continue
            for source in _copy_sources(value):
                assert (REPO / source).exists(), f"COPY {source}: not in the repository"
                assert not dockerignored(source, patterns), f"COPY {source}: .dockerignore'd"
                copied += 1
    assert copied >= 8


def test_every_python_package_the_wheel_needs_is_copied() -> None:
    """pyproject's package list and readme must be in the builder, or pip builds less."""
    config = tomllib.loads(PYPROJECT.read_text())
    wanted = {p.rstrip("*") for p in config["tool"]["setuptools"]["packages"]["find"]["include"]}
    wanted.add(config["project"]["readme"])
    copied = {
        source.rstrip("/")
        for value in _stage("builder").values("COPY")
        if "--from=" not in value
        for source in _copy_sources(value)
    }
    assert wanted - copied == set()


# --- structure -----------------------------------------------------------------------------


def test_three_stages_node_builder_runtime() -> None:
    stages = _stages()
    assert [s.name for s in stages] == ["dashboard", "builder", "runtime"]
    assert stages[0].base.startswith("node:")
    assert stages[1].base == stages[2].base
    assert re.fullmatch(r"python:3\.\d+-slim-\w+", stages[2].base)
    # The runtime takes only the built environment; nothing from the build context.
    runtime_copies = _final().values("COPY")
    assert runtime_copies == ["--from=builder /opt/mlgate /opt/mlgate"]


def test_dashboard_stage_builds_what_the_makefile_builds() -> None:
    stage = _stage("dashboard")
    runs = stage.values("RUN")
    assert any(run.startswith("npm ci") and "--ignore-scripts" in run for run in runs)
    assert "npm run build" in runs
    (workdir,) = stage.values("WORKDIR")
    builder_copy = next(v for v in _stage("builder").values("COPY") if "--from=dashboard" in v)
    assert _copy_sources(builder_copy) == [f"{workdir}/dist"]
    # build.mjs writes dist/ next to itself, and dashboard.py serves that folder.
    assert 'join(here, "dist")' in (REPO / "services/gateway/dashboard/build.mjs").read_text()
    from services.gateway.dashboard import DIST

    assert DIST.name == "dist"
    assert any(
        "services.gateway.dashboard import DIST" in r for r in _stage("builder").values("RUN")
    )


def test_final_user_is_the_non_root_10001() -> None:
    final = _final()
    (user,) = final.values("USER")
    assert user == "10001:10001"
    (create,) = [run for run in final.values("RUN") if "useradd" in run]
    assert "--uid 10001" in create
    assert "--gid 10001" in create
    env = dict(kv.split("=", 1) for value in final.values("ENV") for kv in shlex.split(value))
    assert env["MLGATE_HOME"] == "/data"
    assert "chown 10001:10001 /data" in create


def test_healthcheck_entrypoint_cmd_and_ports() -> None:
    final = _final()
    (healthcheck,) = final.values("HEALTHCHECK")
    command = _exec_form(healthcheck.split(" CMD ", 1)[1])
    assert command[:2] == ["python", "-c"]
    assert "/v2/health/ready" in command[2]
    assert "--start-period=" in healthcheck
    (entrypoint,) = final.values("ENTRYPOINT")
    assert _exec_form(entrypoint) == ["mlgate"]
    (cmd,) = final.values("CMD")
    args = _exec_form(cmd)
    assert args == ["serve", "--host", "0.0.0.0"]  # noqa: S104 - a container listens on all
    assert cli_usage_error(args) is None
    (expose,) = final.values("EXPOSE")
    assert expose.split() == ["8000", "8001"]


def test_pins_match_pyproject() -> None:
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    requirements = {Requirement(d).name: Requirement(d) for d in dependencies}
    builder = _stage("builder").args
    torch_pin = str(requirements["torch"].specifier)
    assert torch_pin == f"=={builder['TORCH_VERSION']}"
    for arg in ("ONNXRUNTIME_CPU", "ONNXRUNTIME_GPU"):
        pinned = Requirement(builder[arg])
        (spec,) = pinned.specifier
        assert spec.operator == "==", arg
        # The GPU build has its own releases; both satisfy the project's onnxruntime range.
        assert requirements["onnxruntime"].specifier.contains(spec.version), arg


# --- the build argument, run -------------------------------------------------------------


def _install_script() -> str:
    (script,) = [run for run in _stage("builder").values("RUN") if "pip install ." in run]
    return script


def _run_install(
    tmp_path: Path, variant: str
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """The builder's install RUN under /bin/sh with the stage's ARG defaults and a `pip`
    that records each call instead of downloading."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "pip.log"
    pip = bin_dir / "pip"
    pip.write_text(f'#!/bin/sh\necho "$*" >> {shlex.quote(str(log))}\n')
    pip.chmod(pip.stat().st_mode | stat.S_IXUSR)
    env = {**_stage("builder").args, "VARIANT": variant, "PATH": f"{bin_dir}:/usr/bin:/bin"}
    done = subprocess.run(
        ["/bin/sh", "-c", _install_script()],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    calls = log.read_text().splitlines() if log.exists() else []
    return done, calls


def test_cpu_variant_installs_cpu_torch_and_onnxruntime(tmp_path: Path) -> None:
    done, calls = _run_install(tmp_path, "cpu")
    assert done.returncode == 0, done.stderr
    args = _stage("builder").args
    assert calls == [
        f"install --index-url {args['TORCH_INDEX_CPU']} torch=={args['TORCH_VERSION']}",
        f"install . {args['ONNXRUNTIME_CPU']}",
    ]
    assert args["TORCH_INDEX_CPU"] == "https://download.pytorch.org/whl/cpu"


def test_gpu_variant_swaps_in_onnxruntime_gpu_and_cuda_torch(tmp_path: Path) -> None:
    done, calls = _run_install(tmp_path, "gpu")
    assert done.returncode == 0, done.stderr
    args = _stage("builder").args
    assert calls == [
        f"install --index-url {args['TORCH_INDEX_GPU']} torch=={args['TORCH_VERSION']}",
        f"install . {args['ONNXRUNTIME_CPU']}",
        "uninstall --yes onnxruntime",
        f"install {args['ONNXRUNTIME_GPU']}",
    ]
    assert args["ONNXRUNTIME_GPU"].startswith("onnxruntime-gpu==")
    assert args["TORCH_INDEX_GPU"] != args["TORCH_INDEX_CPU"]


def test_unknown_variant_fails_the_build(tmp_path: Path) -> None:
    done, calls = _run_install(tmp_path, "tpu")
    assert done.returncode != 0
    assert "VARIANT must be cpu or gpu, not 'tpu'" in done.stderr
    assert calls == []


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
def test_a_failing_pip_fails_the_build(tmp_path: Path, variant: str) -> None:
    """`set -eu`: the first failed install stops the script (no half-built image)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    pip = bin_dir / "pip"
    pip.write_text("#!/bin/sh\nexit 3\n")
    pip.chmod(pip.stat().st_mode | stat.S_IXUSR)
    env = {**_stage("builder").args, "VARIANT": variant, "PATH": f"{bin_dir}:/usr/bin:/bin"}
    done = subprocess.run(
        ["/bin/sh", "-c", _install_script()], env=env, capture_output=True, timeout=30, check=False
    )
    assert done.returncode == 3
