"""What a gateway serving an ONNX artifact imports: onnxruntime, not the training stack.

`mlgate serve` answers sooner without importing torch (TorchScript's runtime, the
exporters, the retrainer), scikit-learn and SciPy (the monitor process's quality
statistics), Evidently or tritonclient (a Triton deployment's runtime), and it starts
without pandas. Checked in a fresh interpreter (this one has imported them all) that starts
the app on the fixture's home, whose `mlp@production` has an ONNX artifact, and answers one
inference. (After that request the inference log's writer thread may import pandas:
pyarrow does when it converts a numpy array.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

NOT_FOR_ONNX = (
    "evidently",
    "matplotlib",
    "onnx",
    "onnxscript",
    "scipy",
    "sklearn",
    "torch",
    "tritonclient",
)

PROBE = """
import asyncio, json, sys
from pathlib import Path

import httpx

from registry.store import Registry
from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings

home, unwanted = Path(sys.argv[1]), json.loads(sys.argv[2])
loaded = lambda names: sorted(m for m in names if m in sys.modules)
seen = {"import": loaded([*unwanted, "pandas"])}

async def serve_one() -> dict:
    registry = Registry(home=home)
    app = create_app(GatewaySettings(), registry=registry)
    async with app.router.lifespan_context(app):
        seen["started"] = loaded([*unwanted, "pandas"])  # the model is loaded by now
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            row = {"name": "x", "shape": [1, 6], "datatype": "FP32", "data": [0.5] * 6}
            answer = await client.post("/v2/models/mlp/infer", json={"inputs": [row]})
            served = app.state.dataplane.manager.all_served()
    registry.close()
    return {"status": answer.status_code, "formats": sorted(s.kind for s in served)}

outcome = asyncio.run(serve_one())
seen["served"] = loaded(unwanted)
print(json.dumps({"seen": seen, **outcome}))
"""


def test_serving_onnx_imports_no_training_library(home: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-c", PROBE, str(home), json.dumps(NOT_FOR_ONNX)],
        cwd=ROOT,  # `-c` puts the working directory first on sys.path: this checkout
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout)
    assert report["status"] == 200
    assert "onnx" in report["formats"]
    assert report["seen"] == {"import": [], "started": [], "served": []}
