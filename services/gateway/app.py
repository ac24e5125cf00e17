"""`create_app(settings)`: the gateway as an ASGI app. Nothing happens at import.

The registry and the model manager are created when the app starts (the lifespan), so
building the app reads no database and loads no model; stopping it unloads every model.
With `settings.grpc_port` set, the lifespan also serves gRPC (`rpc/server.py`) on the
same loop and data plane, last to start and first to stop; `app.state.grpc_port` is the
port it bound (0 asks for a free one), None without gRPC.
Every error a route raises becomes the `{"error": "..."}` envelope in one place
(`rest.error_response`); the router's own 404/405 use the same envelope.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request, Response
from prometheus_client import CollectorRegistry
from starlette.exceptions import HTTPException

from monitors.metrics.collectors import (
    GatewayMetrics,
    InferenceLogCollector,
    ServingCollector,
    TaskCollector,
)
from monitors.settings import MonitorSettings
from registry.errors import MlgateError
from registry.store import Registry
from services.gateway.admission import Admission, LoopLag
from services.gateway.asgi import GatewayApp
from services.gateway.auth import BASIC, check_api_key
from services.gateway.batch_jobs import BatchJobs
from services.gateway.canary_judge import CanaryJudge
from services.gateway.dashboard import Dashboard
from services.gateway.dataplane import DataPlane
from services.gateway.door import STATE_KEY, Door
from services.gateway.manager import ModelManager
from services.gateway.monitoring import GatewayMonitoring
from services.gateway.openapi.routes import docs_routes
from services.gateway.processes.metrics import MetricsExchange
from services.gateway.rest import INFER_PATHS, build_routes, error_response
from services.gateway.routes.alerts import alert_routes
from services.gateway.routes.batch import batch_routes
from services.gateway.routes.canary import canary_routes
from services.gateway.routes.feedback import feedback_routes
from services.gateway.routes.monitoring import monitoring_routes
from services.gateway.routes.registry import registry_routes
from services.gateway.routes.tasks import task_routes
from services.gateway.settings import GatewaySettings

if TYPE_CHECKING:
    from services.gateway.processes.slots import WorkerSlot

__all__ = ["create_app"]

# Of the SLO, what the event loop's own waits may take before requests are refused at the
# door (admission.py); the rest is the batcher's queue and the compute. At 0.4 the door
# refused 701/s on the tiny model at 256 connections while the p99 it answered was 86 ms.
FRONT_SHARE = 0.75


def create_app(
    settings: GatewaySettings | None = None,
    *,
    registry: Registry | None = None,
    metrics_registry: CollectorRegistry | None = None,
    monitor_settings: MonitorSettings | None = None,
    worker: WorkerSlot | None = None,
) -> FastAPI:
    """`metrics_registry`: where the Prometheus collectors go (a fresh one if not given).
    `monitor_settings`: the inference log and drift monitor (`MLGATE_*` if not given); its
    home defaults to the registry's. `worker`: this process's slot when the gateway runs
    several workers (`workers.py`): /metrics and /dashboard then add up across them."""
    settings = settings or GatewaySettings()
    metrics = GatewayMetrics(metrics_registry or CollectorRegistry(), slo_s=settings.slo_ms / 1000)
    dashboard = Dashboard(
        metrics.registry,
        interval_s=settings.dashboard_interval_s,
        check=None if settings.open_dashboard else _key_check(settings, challenge=BASIC),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Door]]:
        own_registry = registry is None
        store = registry or Registry()
        manager = ModelManager(store, settings, metrics=metrics)
        monitoring = GatewayMonitoring(
            store,
            manager,
            metrics,
            _monitor_settings(monitor_settings, store),
            port=settings.port,
        )
        collectors = [
            ServingCollector(manager.served_views),
            InferenceLogCollector(monitoring.log.stats),
            TaskCollector(monitoring.tasks.counts),
        ]
        for collector in collectors:
            metrics.registry.register(collector)
        app.state.monitoring = monitoring
        app.state.batch_jobs = batch_jobs = BatchJobs(store, manager, settings.batch_dir)
        app.state.canary_judge = judge = CanaryJudge(
            store,
            manager,
            metrics,
            interval_s=settings.canary_check_s,
            min_requests=settings.canary_min_requests,
        )
        admission = Admission(_shed_lag_s(settings), lag=LoopLag(report=metrics.loop_lag.set))
        app.state.dataplane = DataPlane(
            manager,
            max_rows=settings.max_rows_per_request,
            log=monitoring.log,
            admission=admission,
        )
        exchange = None
        if worker is not None:
            exchange = MetricsExchange(worker.folder, worker.index, metrics.registry)
            await exchange.start()
            app.state.metrics_exchange = exchange
            dashboard.source = exchange.merged
        await monitoring.start()
        await manager.start()
        await judge.start()
        await dashboard.start()
        await admission.start()
        grpc_server = None
        app.state.grpc_port = None
        try:
            if settings.grpc_port is not None:
                # Imported here: grpc and the protobuf modules cost nothing when gRPC is off.
                from services.gateway.rpc.server import GrpcServer

                grpc_server = GrpcServer(app.state.dataplane, settings, metrics)
                app.state.grpc_port = await grpc_server.start()
            # The door (uvicorn's protocol, `door.py`) finds the admission here.
            yield {STATE_KEY: Door(admission, door_counter(manager, metrics))}
        finally:
            if grpc_server is not None:
                await grpc_server.stop()  # first: its calls still need everything below
            await admission.stop()
            await dashboard.stop()
            await judge.stop()
            await batch_jobs.stop()  # before the manager: its batches need the versions
            await app.state.dataplane.shadowing.drained()  # mirrored requests in flight
            await manager.stop()
            await monitoring.stop()
            if exchange is not None:
                await exchange.stop()
            for collector in collectors:
                metrics.registry.unregister(collector)
            if own_registry:
                store.close()

    app = GatewayApp(
        title="mlgate",
        summary="Open Inference Protocol gateway with adaptive batching",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        # mlgate exports its own Prometheus metrics; FastAPI's built-in OpenTelemetry
        # spans and metrics would cost every request without anyone reading them.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.metrics = metrics
    data_routes = build_routes(settings, metrics)
    app.fast_routes = [r for r in data_routes if r.path in INFER_PATHS]
    app.router.routes.extend([*data_routes, *monitoring_routes(settings), *alert_routes(settings)])
    app.router.routes.extend(feedback_routes(settings))
    app.router.routes.extend(dashboard.routes())
    app.router.routes.extend(task_routes(settings))
    app.router.routes.extend(registry_routes(settings))
    app.router.routes.extend(batch_routes(settings))
    app.router.routes.extend(canary_routes(settings))
    app.router.routes.extend(docs_routes(settings))

    async def envelope(_request: Request, exc: Exception) -> Response:
        """The one exception handler: every error on every route leaves as the envelope
        (`rest.error_response`), the router's own 404/405 too (a 405 keeps the `Allow`
        header listing the route's methods, RFC 9110 15.5.6). The inference routes, which
        the ASGI fast path (`asgi.py`) calls without this middleware, and the other routes
        through `guarded`, answer with the same function."""
        return error_response(exc)

    app.add_exception_handler(HTTPException, envelope)
    app.add_exception_handler(MlgateError, envelope)
    app.add_exception_handler(Exception, envelope)  # Starlette logs it again, then re-raises
    return app


def _key_check(settings: GatewaySettings, *, challenge: str) -> Callable[[Request], None]:
    """The API key check (a no-op without keys), asking browsers for HTTP Basic."""

    def check(request: Request) -> None:
        check_api_key(request.headers, settings.api_keys, challenge=challenge)

    return check


def door_counter(manager: ModelManager, metrics: GatewayMetrics) -> Callable[[bytes], None]:
    """Counts a refusal at the door as the endpoint would: a 503 in the request metrics and
    `overload` in the rejections, under the model's name only if it is served here."""

    def count(path: bytes) -> None:
        parts = path.decode("latin-1").split("/")  # /v2/models/m[/versions/v]/infer
        name = parts[3] if len(parts) > 3 else ""
        protocol = "rest"
        if parts[1:2] == ["v1"]:
            name, protocol = name.removesuffix(":predict"), "v1"
        if not manager.knows(name):
            metrics.observe_request("", "", protocol, 503, 0.0)
            return
        routed = manager.routed_version(name)
        version = parts[5] if len(parts) > 6 else ("" if routed is None else str(routed))
        metrics.rejected.labels(name, version, "overload").inc()
        metrics.observe_request(name, version, protocol, 503, 0.0)

    return count


def _shed_lag_s(settings: GatewaySettings) -> float:
    lag_ms = settings.loop_lag_shed_ms
    return (settings.slo_ms * FRONT_SHARE if lag_ms is None else lag_ms) / 1000


def _monitor_settings(given: MonitorSettings | None, registry: Registry) -> MonitorSettings:
    settings = given or MonitorSettings()
    if "home" in settings.model_fields_set:
        return settings
    return settings.model_copy(update={"home": registry.settings.home})
