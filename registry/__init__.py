"""The model registry: versions, content-addressed artifacts, aliases and lineage.

from registry import Registry, Dataset, Metric
reg = Registry()                       # MLGATE_HOME, SQLite by default
v = reg.register(model, "credit-risk", example_inputs=(x[:8],), feature_names=cols,
                 reference=train_df, datasets=[train_ds, valid_ds],
                 trainer="examples.credit_risk.train:train",
                 params={"epochs": 20}, metrics={"auc": Metric(0.91, dataset="valid")})
reg.get("credit-risk@production"); reg.set_alias("credit-risk", "production", 3, reason="...")

The names below are imported on first use (PEP 562), not with the package: importing
`registry.errors` (as every CLI command module does) must not pull in SQLAlchemy, pandas
and pyarrow, so that `mlgate --help` starts at once.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from registry.errors import MlgateError
    from registry.lineage import Dataset, Metric
    from registry.names import ModelRef, parse_ref
    from registry.records import AliasEvent, ArtifactInfo, ModelSummary, ModelVersion
    from registry.settings import RegistrySettings
    from registry.signature import Signature, TensorSpec
    from registry.store import Registry
    from registry.training import TrainingContext, TrainingResult

__all__ = [
    "AliasEvent",
    "ArtifactInfo",
    "Dataset",
    "Metric",
    "MlgateError",
    "ModelRef",
    "ModelSummary",
    "ModelVersion",
    "Registry",
    "RegistrySettings",
    "Signature",
    "TensorSpec",
    "TrainingContext",
    "TrainingResult",
    "parse_ref",
]

# Where each public name lives.
_MODULES = {
    "AliasEvent": "registry.records",
    "ArtifactInfo": "registry.records",
    "Dataset": "registry.lineage",
    "Metric": "registry.lineage",
    "MlgateError": "registry.errors",
    "ModelRef": "registry.names",
    "ModelSummary": "registry.records",
    "ModelVersion": "registry.records",
    "Registry": "registry.store",
    "RegistrySettings": "registry.settings",
    "Signature": "registry.signature",
    "TensorSpec": "registry.signature",
    "TrainingContext": "registry.training",
    "TrainingResult": "registry.training",
    "parse_ref": "registry.names",
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:  # also how `from registry import store` finds a submodule instead
        raise AttributeError(f"module 'registry' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup is an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
