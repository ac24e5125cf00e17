"""Schemathesis against the gateway's own /openapi.json: every operation, and no 5xx.

A real gateway (uvicorn on 127.0.0.1, the conftest's registered models) serves the
document; schemathesis generates requests from it (examples, coverage of the boundaries,
positive and negative fuzzing, unsupported methods) and checks every answer: never a 5xx
(`not_a_server_error`: nothing a client sends may break the gateway), a 405 that says what
is allowed (`unsupported_method`), and a status, content type, headers and body that the
document describes (the `*_conformance` checks), so the document cannot drift from the
code unnoticed. Positive-data acceptance and negative-data rejection are off: the routes
check more than a schema can say (a tensor's shape against the model, a model's labels).

Three shards, so that pytest-xdist spreads them: the data plane and the control plane
share one gateway; the repository API (which loads and unloads models, and so changes
what every other route answers) gets its own. Each operation runs until its first failure
would stop it, so the test records every failure instead of raising, and each shard's
teardown fails with all of them, grouped: operation, check, status, one curl command to
reproduce. Hypothesis runs derandomized, so a run is repeatable.
"""

from __future__ import annotations

import re
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis.errors import FailureGroup

from registry import Registry
from tests.services.gateway.conftest import LiveServer

pytestmark = pytest.mark.slow

EXAMPLES = 60  # per operation and generation mode, in the fuzzing phase
CHECKS = (
    "not_a_server_error",
    "unsupported_method",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)
CONFIG: dict[str, Any] = {
    "generation": {
        "max-examples": EXAMPLES,
        "deterministic": True,
        "database": "none",
    },
    "parameters": {
        f"{where}.{name}": {"dictionary": "digits", "probability": 0.2}
        for where, name in [
            ("path", "version"),
            ("path", "task_id"),
            ("query", "version"),
            ("query", "check"),
            ("query", "limit"),
        ]
    },
    # Integers as text that Python's str.isdigit() accepts and int() may not (superscripts),
    # may read as another number (other scripts' digits), or that leave int64 behind.
    "dictionaries": {"digits": {"values": ["\u00b3", "1\u00b2", "\u0663", "9223372036854775808"]}},
    "phases": {"stateful": {"enabled": False}},
    "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
    "request-timeout": 60,
    # 5xx answers the protocol gives on purpose to what a request asks for: a deadline the
    # request sets (parameters.timeout, X-Request-Deadline) that passed is 504 and one that
    # cannot be met is shed with 503; a load whose settings cannot load on this host (device
    # cuda without a GPU) is 503 with the reason, as every request to that version then is.
    "operations": [
        {
            "include-operation-id": operation_id,
            "checks": {"not_a_server_error": {"expected-statuses": statuses}},
        }
        for operation_id, statuses in [
            ("modelInfer", ["2xx", "3xx", "4xx", "503", "504"]),
            ("modelVersionInfer", ["2xx", "3xx", "4xx", "503", "504"]),
            ("repositoryModelLoad", ["2xx", "3xx", "4xx", "503"]),
        ]
    ],
}
# Each shard's paths, and the fewest cases it must have generated (a run of this file
# makes about 2,950 in all; fewer means an operation was skipped or generation broke).
DATA_PLANE = r"^/(v2|v2/health/.*|v2/models/.*|v1/.*|metrics)$"
CONTROL = r"^/(monitoring|retraining|alerts|batch|dashboard|docs|openapi)"
# The repository API and the registry's alias moves change what every other route answers:
# they get a gateway of their own.
REPOSITORY = r"^/(v2/repository/|registry/)"
MIN_CASES = {"data": 1100, "control": 700, "repository": 400}


def test_every_documented_path_is_in_a_shard(gateway_schema: Any) -> None:
    """A path no shard's pattern takes would never be fuzzed, silently."""
    paths = gateway_schema.raw_schema["paths"]
    left = [p for p in paths if not any(re.search(x, p) for x in (DATA_PLANE, CONTROL, REPOSITORY))]
    assert left == []


def served_schema(server: LiveServer) -> Any:
    """The document the gateway serves, fuzzed against that gateway. Loaded as a dict, so
    that /openapi.json itself is among the operations (a URL loader leaves it out)."""
    document = httpx.get(f"{server.url}/openapi.json", timeout=30).json()
    config = schemathesis.Config.from_dict({**CONFIG, "base-url": server.url})
    return schemathesis.openapi.from_dict(document, config=config)


def started(home_template: Path, folder: Path) -> Iterator[LiveServer]:
    home = folder / "home"
    shutil.copytree(home_template, home)
    registry = Registry(home=home)
    try:
        with LiveServer(registry) as server:
            yield server
    finally:
        registry.close()


@pytest.fixture(scope="module")
def shared_gateway(
    template_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    yield from started(template_home, tmp_path_factory.mktemp("fuzz-shared"))


@pytest.fixture(scope="module")
def repository_gateway(
    template_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    yield from started(template_home, tmp_path_factory.mktemp("fuzz-repository"))


@pytest.fixture(scope="module")
def gateway_schema(shared_gateway: LiveServer) -> Any:
    return served_schema(shared_gateway)


@pytest.fixture(scope="module")
def repository_schema(repository_gateway: LiveServer) -> Any:
    return served_schema(repository_gateway)


class Findings:
    """Cases generated per operation, and every failed check grouped by what failed."""

    def __init__(self, shard: str, expected: set[str]) -> None:
        self.shard = shard
        self.expected = expected
        self.cases: Counter[str] = Counter()
        self.failures: dict[tuple[str, str, int], list[str]] = {}

    def record(self, case: Any, response: Any) -> None:
        self.cases[case.operation.label] += 1
        try:
            case.validate_response(response)
        except FailureGroup as group:
            for failure in group.exceptions:
                key = (
                    case.operation.label,
                    f"{failure.code} {failure.title}",
                    response.status_code,
                )
                example = f"{case.as_curl_command()}\n      -> {response.text[:240]}"
                self.failures.setdefault(key, []).append(example)

    def report(self) -> str:
        lines = [f"{len(self.failures)} kinds of failure in the {self.shard} shard:"]
        for (operation, check, status), examples in sorted(self.failures.items()):
            lines.append(f"  {operation}: {check}, {status} ({len(examples)} cases), e.g.")
            lines.append(f"      {examples[0]}")
        return "\n".join(lines)

    def verify(self) -> None:
        """After every operation of the shard ran (schemathesis runs them inside the test)."""
        total = sum(self.cases.values())
        print(f"{self.shard} shard: {total} cases over {len(self.cases)} operations")
        assert set(self.cases) == self.expected, (
            f"operations not fuzzed: {self.expected - set(self.cases)}"
        )
        assert total >= MIN_CASES[self.shard], f"only {total} cases: {dict(self.cases)}"
        if self.failures:
            pytest.fail(self.report(), pytrace=False)


def shard_findings(request: pytest.FixtureRequest, shard: str, pattern: str) -> Iterator[Findings]:
    schema = request.getfixturevalue(
        "repository_schema" if shard == "repository" else "gateway_schema"
    )
    labels = {
        f"{method.upper()} {path}"
        for path, item in schema.raw_schema["paths"].items()
        for method in item
        if re.search(pattern, path)
    }
    found = Findings(shard, labels)
    yield found
    found.verify()


@pytest.fixture
def data_findings(request: pytest.FixtureRequest) -> Iterator[Findings]:
    yield from shard_findings(request, "data", DATA_PLANE)


@pytest.fixture
def control_findings(request: pytest.FixtureRequest) -> Iterator[Findings]:
    yield from shard_findings(request, "control", CONTROL)


@pytest.fixture
def repository_findings(request: pytest.FixtureRequest) -> Iterator[Findings]:
    yield from shard_findings(request, "repository", REPOSITORY)


@pytest.fixture(autouse=True)
def node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    """schemathesis 4.32's fixture-loaded tests read and write `item._nodeid`, which pytest
    9.2 no longer has (its node ids are `NodeId` objects now): give it the attribute it
    names its subtests by. Nothing in pytest reads it back."""
    request.node._nodeid = request.node.nodeid


gateway = schemathesis.pytest.from_fixture("gateway_schema")
repository = schemathesis.pytest.from_fixture("repository_schema")


@gateway.include(path_regex=DATA_PLANE).parametrize()
def test_the_data_plane_answers_no_5xx(case: Any, data_findings: Findings) -> None:
    data_findings.record(case, case.call())


@gateway.include(path_regex=CONTROL).parametrize()
def test_the_control_plane_answers_no_5xx(case: Any, control_findings: Findings) -> None:
    control_findings.record(case, case.call())


@repository.include(path_regex=REPOSITORY).parametrize()
def test_the_repository_api_answers_no_5xx(case: Any, repository_findings: Findings) -> None:
    repository_findings.record(case, case.call())
