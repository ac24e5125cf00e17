"""What a version came from: datasets (digest + source), code (git), environment, metrics.

A dataset's digest is the sha256 of its canonical bytes, so the same table read from CSV
or Parquet, or built in memory, gets the same digest: a header (column names, dtypes,
row count) followed by each column's values, little-endian and C-ordered; strings are
UTF-8 with a length prefix. Arrays hash their dtype, shape and bytes the same way.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
import subprocess
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from registry.errors import InvalidModelInput

if TYPE_CHECKING:  # pandas is imported by the functions that read or digest a table
    import pandas as pd

__all__ = [
    "Dataset",
    "Metric",
    "dataset_digest",
    "environment",
    "git_info",
    "normalise_metrics",
]

_ENV_PACKAGES = ("torch", "onnx", "onnxruntime", "onnxscript", "numpy", "pandas")


@dataclass(frozen=True, slots=True)
class Dataset:
    """A dataset a version was trained or evaluated on, recorded by digest, not by copy."""

    name: str
    digest: str
    source: str
    rows: int | None = None
    role: str = "training"

    @classmethod
    def from_frame(
        cls, data: pd.DataFrame | np.ndarray, *, name: str, source: str, role: str = "training"
    ) -> Dataset:
        return cls(name=name, digest=dataset_digest(data), source=source, rows=len(data), role=role)

    @classmethod
    def from_file(cls, path: str | Path, *, name: str, role: str = "training") -> Dataset:
        """A CSV or Parquet file: digested as a table, so the file format does not matter."""
        frame = read_table(Path(path))
        return cls.from_frame(frame, name=name, source=Path(path).resolve().as_uri(), role=role)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Metric:
    """A metric value and the name of the dataset it was measured on."""

    value: float
    dataset: str


def read_table(path: Path) -> pd.DataFrame:
    import pandas as pd

    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix == ".csv":
            return pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise InvalidModelInput(f"cannot read table {path}: {exc}") from exc
    raise InvalidModelInput(f"table {path}: expected a .csv or .parquet file")


def dataset_digest(data: pd.DataFrame | np.ndarray) -> str:
    """sha256 of the canonical bytes of a table or array (see the module docstring)."""
    hasher = hashlib.sha256()
    if isinstance(data, np.ndarray):
        array = np.ascontiguousarray(data)
        header: dict[str, Any] = {
            "kind": "array",
            "dtype": array.dtype.str,
            "shape": list(array.shape),
        }
        hasher.update(json.dumps(header, sort_keys=True).encode())
        _hash_values(hasher, array.reshape(-1))
        return hasher.hexdigest()
    import pandas as pd

    if not isinstance(data, pd.DataFrame):
        raise InvalidModelInput(
            f"dataset must be a pandas DataFrame or a numpy array, not {type(data).__name__}"
        )
    columns = [str(c) for c in data.columns]
    values = [data[c].to_numpy() for c in data.columns]
    dtypes = [_canonical_dtype(v.dtype) for v in values]
    header = {"kind": "table", "columns": columns, "dtypes": dtypes, "rows": len(data)}
    hasher.update(json.dumps(header, sort_keys=True).encode())
    for column_values in values:
        _hash_values(hasher, column_values)
    return hasher.hexdigest()


def _canonical_dtype(dtype: np.dtype[Any]) -> str:
    if dtype.kind in "biuf":
        return dtype.newbyteorder("<").str
    if dtype.kind == "M":
        return "datetime64[ns]"
    return "string"


def _hash_values(hasher: Any, values: np.ndarray) -> None:
    kind = values.dtype.kind
    if kind in "biuf":
        hasher.update(np.ascontiguousarray(values.astype(values.dtype.newbyteorder("<"))).tobytes())
    elif kind == "M":
        hasher.update(values.astype("datetime64[ns]").astype("<i8").tobytes())
    else:
        from pandas import NA

        for item in values:
            encoded = ("\x00<NA>" if _is_missing(item, NA) else str(item)).encode()
            hasher.update(len(encoded).to_bytes(8, "little"))
            hasher.update(encoded)


def _is_missing(item: Any, na: Any) -> bool:
    return item is None or (isinstance(item, float) and np.isnan(item)) or item is na


def git_info(path: Path) -> dict[str, Any] | None:
    """The commit and dirty flag of the git work tree holding `path`, or None."""
    folder = path if path.is_dir() else path.parent

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return None
    # Untracked files do not make the tree dirty: the same rule as MLflow's source tags.
    status = git("status", "--porcelain", "--untracked-files=no")
    return {
        "commit": commit,
        "dirty": bool(status),
        "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
        "root": git("rev-parse", "--show-toplevel"),
    }


def environment() -> dict[str, Any]:
    versions: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    for package in _ENV_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def normalise_metrics(
    metrics: Mapping[str, Metric | tuple[float, str]] | None, dataset_names: set[str]
) -> dict[str, dict[str, Any]]:
    """`{"auc": Metric(0.91, "valid")}` or `{"auc": (0.91, "valid")}` → JSON; checked."""
    result: dict[str, dict[str, Any]] = {}
    for name, metric in (metrics or {}).items():
        if isinstance(metric, tuple) and len(metric) == 2:
            metric = Metric(float(metric[0]), str(metric[1]))
        if not isinstance(metric, Metric):
            raise InvalidModelInput(
                f"metric {name!r} must say which dataset it was measured on: "
                f"Metric(value, dataset='valid') or (value, 'valid'), not {metric!r}"
            )
        if metric.dataset not in dataset_names:
            known = ", ".join(sorted(dataset_names)) or "none given"
            raise InvalidModelInput(
                f"metric {name!r} was measured on dataset {metric.dataset!r}, which is not one "
                f"of the version's datasets ({known})"
            )
        value = float(metric.value)
        if not np.isfinite(value):
            raise InvalidModelInput(f"metric {name!r} is {value}; expected a finite number")
        result[name] = {"value": value, "dataset": metric.dataset}
    return result
