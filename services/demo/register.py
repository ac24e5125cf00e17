"""`mlgate demo`, first half: the credit-risk model trained, registered, gated, promoted.

Generate data → run the trainer entrypoint → register with lineage → export to ONNX and
TorchScript through the parity gate → promote to `production`. The second half, the
served loop (drift, a task, retraining, promotion), is `services/demo/loop.py`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from examples.credit_risk.data import generate, source_uri
from examples.credit_risk.train import TRAINER
from exporters import export
from registry.entrypoints import resolve_entrypoint
from registry.store import Registry

__all__ = ["run_demo"]


def run_demo(
    registry: Registry,
    *,
    rows: int,
    seed: int,
    name: str,
    progress: Callable[[str], None],
    log: Callable[[str], None],
) -> dict[str, Any]:
    started = time.perf_counter()
    progress("data")
    data = generate(rows, seed=seed)
    progress("train")
    trainer = resolve_entrypoint(TRAINER, "trainer entrypoint")
    result = trainer(data, seed=seed, source=source_uri(rows, seed))
    version = result.register(registry, name, trainer=TRAINER, progress=progress)
    log(f"registered {version.ref}")
    exports = {}
    for fmt in ("onnx", "torchscript"):
        outcome = export(registry, version.ref, fmt, progress=progress)
        report = outcome.report
        exports[fmt] = {
            "status": outcome.artifact.status,
            "export_seconds": outcome.artifact.details.get("export_seconds"),
            "max_abs_diff": report.get("max_abs_diff"),
            "max_rel_diff": report.get("max_rel_diff"),
            "batch_sizes": report.get("batch_sizes"),
            "exporter": outcome.artifact.details.get("exporter"),
        }
        log(
            f"{fmt}: {outcome.artifact.status} the parity gate "
            f"(max abs diff {report.get('max_abs_diff'):.3g}, batches {report.get('batch_sizes')}, "
            f"exported in {outcome.artifact.details.get('export_seconds')}s)"
        )
    event = registry.set_alias(
        name,
        "production",
        version.version,
        reason=f"demo: trained on {rows} generated rows (seed {seed}); parity gate passed",
    )
    return {
        "ref": version.ref,
        "metrics": {k: v["value"] for k, v in version.lineage["metrics"].items()},
        "exports": exports,
        "promoted": {"alias": event.alias, "from": event.from_version, "to": event.to_version},
        "seconds": round(time.perf_counter() - started, 2),
    }
