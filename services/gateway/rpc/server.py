"""The gRPC server: a grpc.aio server on the gateway's own event loop, beside the HTTP app.

It shares the process, the loop and the data plane with REST, so a model is loaded and
batched once whichever transport a request arrives on. The app's lifespan starts it after
the models are loaded (as uvicorn opens its HTTP port only then) and stops it first.
"""

from __future__ import annotations

from typing import Any

import grpc  # type: ignore[import-untyped]
from tritonclient.grpc import service_pb2_grpc

from monitors.metrics.collectors import GatewayMetrics
from services.gateway.dataplane import DataPlane
from services.gateway.rpc.service import InferenceServicer
from services.gateway.settings import GatewaySettings

__all__ = ["STOP_GRACE_S", "GrpcServer"]

# How long calls in flight may finish when the gateway stops (uvicorn gives HTTP 10 s in
# `mlgate serve`; gRPC stops first, so it takes part of that).
STOP_GRACE_S = 5.0


class GrpcServer:
    def __init__(
        self, dataplane: DataPlane, settings: GatewaySettings, metrics: GatewayMetrics
    ) -> None:
        self.servicer = InferenceServicer(dataplane, settings, metrics)
        self.settings = settings
        self.port: int | None = None
        self._server: Any = None

    @property
    def address(self) -> str:
        host = self.settings.host
        host = f"[{host}]" if ":" in host and not host.startswith("[") else host
        return f"{host}:{self.settings.grpc_port or 0}"

    async def start(self) -> int:
        """Bind and serve; returns the port (a free one when `grpc_port` is 0)."""
        server = grpc.aio.server(
            options=[
                # The same request limit as REST's bodies; answers are not limited (REST
                # does not limit them either, and a model's output is not the client's doing).
                ("grpc.max_receive_message_length", self.settings.max_body_bytes),
                ("grpc.max_send_message_length", -1),
                # Without this, a port another process listens on is shared, not refused.
                ("grpc.so_reuseport", 0),
            ]
        )
        service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(self.servicer, server)
        try:
            port = int(server.add_insecure_port(self.address))
        except RuntimeError as exc:  # older grpcio returned 0 instead
            raise OSError(
                f"cannot listen for gRPC on {self.address} ({exc}); choose another port "
                "(mlgate serve --grpc-port, MLGATE_GRPC_PORT) or turn gRPC off (--no-grpc)"
            ) from None
        await server.start()
        self._server, self.port = server, port
        return port

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(STOP_GRACE_S)
            self._server = None
