"""Gateway fixtures: a registry with served models, the app in process, and a real server."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import torch
import uvicorn

from exporters import export
from monitors.settings import MonitorSettings
from registry import Registry
from services.demo.traffic import free_port
from services.gateway.app import create_app
from services.gateway.door import DoorProtocol
from services.gateway.settings import GatewaySettings
from services.runtimes.base import Prediction, Tensors
from services.runtimes.onnx import OnnxRuntime
from tests.fixtures import TwoInputs, make_mlp

FEATURES = [f"f{i}" for i in range(6)]


@pytest.fixture(scope="session")
def template_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built once per worker: mlp v1 (production) and v2, both formats; `two` (production)."""
    home = tmp_path_factory.mktemp("gateway-template")
    registry = Registry(home=home)
    reference = pd.DataFrame(
        np.random.default_rng(0).standard_normal((200, 6)).astype(np.float32), columns=FEATURES
    )
    for seed in (0, 1):
        version = registry.register(
            make_mlp(seed=seed),
            "mlp",
            torch.randn(8, 6),
            feature_names=FEATURES,
            reference=reference,
            factory="tests.fixtures:make_mlp",
            factory_kwargs={"seed": seed},
        )
        for fmt in ("onnx", "torchscript"):
            assert export(registry, version.ref, fmt).passed
    registry.set_alias("mlp", "production", 1, reason="fixture")
    examples = {"numeric": torch.randn(8, 4), "counts": torch.randint(0, 5, (8, 3))}
    two = registry.register(TwoInputs(), "two", examples, output_names=["score", "label"])
    assert export(registry, two.ref, "onnx").passed
    registry.set_alias("two", "production", 1, reason="fixture")
    registry.close()
    return home


@pytest.fixture
def home(template_home: Path, tmp_path: Path) -> Path:
    target = tmp_path / "home"
    shutil.copytree(template_home, target)
    return target


@pytest.fixture
def registry(home: Path) -> Iterator[Registry]:
    reg = Registry(home=home)
    yield reg
    reg.close()


def settings(**overrides: Any) -> GatewaySettings:
    # The event-loop-lag shedder is off unless a test turns it on: at a tenth of the SLO it
    # sheds whenever a busy CI machine runs the loop late, and tests that ask for every
    # answer to be 200 would then depend on the speed of the machine.
    values: dict[str, Any] = {
        "poll_interval_s": 0.1,
        "load_retry_s": 0.0,
        "loop_lag_shed_ms": 0,
        **overrides,
    }
    return GatewaySettings(**values)


class Gateway:
    """The app in process, with its lifespan running, and an httpx client on it."""

    def __init__(self, client: httpx.AsyncClient, app: Any) -> None:
        self.client = client
        self.app = app

    @property
    def manager(self) -> Any:
        return self.app.state.dataplane.manager

    async def infer(self, model: str, x: np.ndarray, **extra: Any) -> httpx.Response:
        body = {
            "inputs": [
                {
                    "name": "x",
                    "shape": list(x.shape),
                    "datatype": "FP32",
                    "data": x.ravel().tolist(),
                }
            ],
            **extra,
        }
        return await self.client.post(f"/v2/models/{model}/infer", json=body)


async def open_gateway(
    registry: Registry,
    client_host: str = "127.0.0.1",
    monitor: MonitorSettings | None = None,
    **overrides: Any,
) -> AsyncIterator[Gateway]:
    app = create_app(settings(**overrides), registry=registry, monitor_settings=monitor)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=(client_host, 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield Gateway(client, app)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def gateway(registry: Registry) -> AsyncIterator[Gateway]:
    async for opened in open_gateway(registry):
        yield opened


class LiveServer:
    """uvicorn on a free loopback port, in a thread of this process."""

    def __init__(
        self, registry: Registry, monitor: MonitorSettings | None = None, **overrides: Any
    ) -> None:
        self.port = free_port()
        self.app = create_app(settings(**overrides), registry=registry, monitor_settings=monitor)
        app = self.app
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            access_log=False,
            loop="asyncio",
            lifespan="on",
            http=DoorProtocol,  # as `mlgate serve` runs it
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the gateway did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture
def live(registry: Registry) -> Iterator[LiveServer]:
    with LiveServer(registry) as server:
        yield server


PATIENCE_S = 120.0
"""How long a test waits for a state it expects (generous: a loaded CI machine is slow,
and a test that passes waits only as long as the state takes)."""


def wait_until(condition: Callable[[], bool], what: str, seconds: float = PATIENCE_S) -> None:
    """Poll `condition` until it holds; fail naming `what` if it has not within `seconds`.

    The limit only bounds a failing test: nothing here asserts how fast anything is."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"still waiting after {seconds:g} s for {what}"
        time.sleep(0.01)


class HeldBatch:
    """The batch of exactly `rows` rows waits, just before it runs, until `release()`.

    It is in flight meanwhile (its execution slot taken, every later request queued behind
    it) for as long as the test needs, on a fast machine or a loaded one, instead of for as
    long as its compute happens to last. `started` is set when it reaches the runtime.
    """

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self.started = threading.Event()
        self._released = threading.Event()

    def release(self) -> None:
        self._released.set()

    def wrap(self, predict: Callable[[OnnxRuntime, Tensors], Any]) -> Any:
        async def held_predict(runtime: OnnxRuntime, inputs: Tensors) -> Prediction:
            if len(next(iter(inputs.values()))) == self.rows:
                self.started.set()
                await asyncio.to_thread(self._released.wait, PATIENCE_S)
            result: Prediction = await predict(runtime, inputs)
            return result

        return held_predict


@pytest.fixture
def hold(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[int], HeldBatch]]:
    """`hold(rows)`: the onnxruntime batch of exactly `rows` rows waits for its `release()`.

    Call it before the model loads: a batcher keeps the runtime's bound `predict`. Warm-up
    batches (1 row and max_batch_size) are other sizes and pass. Released at teardown, so a
    failing test leaves nothing waiting."""
    held: list[HeldBatch] = []

    def install(rows: int) -> HeldBatch:
        batch = HeldBatch(rows)
        monkeypatch.setattr(OnnxRuntime, "predict", batch.wrap(OnnxRuntime.predict))
        held.append(batch)
        return batch

    yield install
    for batch in held:
        batch.release()
