"""The model registry: versions, content-addressed artifacts, aliases and lineage.

from registry import Registry, Dataset, Metric
reg = Registry()                       # MLGATE_HOME, SQLite by default
v = reg.register(model, "credit-risk", example_inputs=(x[:8],), feature_names=cols,
                 reference=train_df, datasets=[train_ds, valid_ds],
                 trainer="examples.credit_risk.train:train",
                 params={"epochs": 20}, metrics={"auc": Metric(0.91, dataset="valid")})
reg.get("credit-risk@production"); reg.set_alias("credit-risk", "production", 3, reason="...")
"""

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
