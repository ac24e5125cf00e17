"""Evidently's drift methods: which exist, which way their scores point, and one column's test.

Evidently's `Report` computes each column's statistic with the stat tests registered in
`evidently.legacy.calculations.stattests`, but wraps them in plot building that costs
several times the statistic itself (see the reference notes, "Evidently speed"). We call
the same stat tests directly, once per column per window:

- the method is chosen by Evidently's own `get_stattest`: the configured name if there is
  one, else Evidently's default for the column (K-S / chi-square / Z-test when the
  reference has at most 1000 rows, normed Wasserstein / Jensen-Shannon above that), from
  the same cleaned values a `Report` would pass it;
- the score, the drift flag and the threshold actually used (the method's default when
  none is configured) are Evidently's `StatTestResult`.

`METHODS` lists the methods for numerical and categorical columns with the direction of
their score, which Evidently keeps only inside each test's code: p-value tests flag drift
when the score falls below the threshold, distances when it reaches it. A test compares
this table with Evidently's registry, so an Evidently upgrade that adds or changes a
method fails there first. Text methods are left out: drift columns are numbers.

Importing Evidently takes seconds (it pulls its UI stack), so it happens on first use,
never at import of this module.
"""

from __future__ import annotations

import functools
import os
import threading
import warnings
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from monitors.drift.columns import Kind
from registry.errors import BadRequest

if TYPE_CHECKING:  # pandas is imported where a function needs it, not by the gateway
    import pandas as pd

__all__ = [
    "METHODS",
    "Method",
    "Statistic",
    "check_method",
    "column_statistic",
    "evidently_stattests",
    "method_for_kind",
]


@dataclass(frozen=True, slots=True)
class Method:
    higher_is_worse: bool
    """True for distances (drift when score >= threshold), False for p-values (score < it)."""
    kinds: frozenset[Kind]


_P_VALUE, _DISTANCE = False, True
_NUM: frozenset[Kind] = frozenset({"num"})
_CAT: frozenset[Kind] = frozenset({"cat"})
_BOTH: frozenset[Kind] = _NUM | _CAT

METHODS: dict[str, Method] = {
    "anderson": Method(_P_VALUE, _NUM),
    "chisquare": Method(_P_VALUE, _CAT),
    "cramer_von_mises": Method(_P_VALUE, _NUM),
    "ed": Method(_DISTANCE, _NUM),
    "empirical_mmd": Method(_P_VALUE, _NUM),
    "es": Method(_P_VALUE, _NUM),
    "fisher_exact": Method(_P_VALUE, _CAT),
    "g_test": Method(_P_VALUE, _CAT),
    "hellinger": Method(_DISTANCE, _BOTH),
    "jensenshannon": Method(_DISTANCE, _BOTH),
    "kl_div": Method(_DISTANCE, _BOTH),
    "ks": Method(_P_VALUE, _NUM),
    "mannw": Method(_P_VALUE, _NUM),
    "psi": Method(_DISTANCE, _BOTH),
    "t_test": Method(_P_VALUE, _NUM),
    "TVD": Method(_P_VALUE, _CAT),
    "wasserstein": Method(_DISTANCE, _NUM),
    "z": Method(_P_VALUE, _CAT),
}


def check_method(name: object, where: str) -> str:
    """`name` if it is a known method, else a BadRequest that lists the known ones."""
    if not isinstance(name, str) or name not in METHODS:
        raise BadRequest(
            f"unknown drift method {name!r} in {where}; valid methods: {sorted(METHODS)}"
        )
    return name


def method_for_kind(name: str, kind: Kind, column: str) -> str:
    """`name` if it applies to a `kind` column (Evidently refuses, e.g., "ks" on categories)."""
    if kind not in METHODS[name].kinds:
        usable = sorted(n for n, m in METHODS.items() if kind in m.kinds)
        what = "numerical" if kind == "num" else "categorical"
        raise BadRequest(
            f"drift method {name!r} does not apply to {what} column {column!r}; methods "
            f"for {what} columns: {usable}"
        )
    return name


@functools.cache
def evidently_stattests() -> ModuleType:
    """Evidently's stat-test registry, imported on first use (seconds: it pulls its UI stack)."""
    # Evidently sends telemetry only from its UI service and collector (evidently/telemetry.py),
    # never from stat tests or Report; the variable is its documented opt-out, set in case a
    # later version adds an event elsewhere. A test checks that no socket is opened.
    os.environ.setdefault("DO_NOT_TRACK", "1")
    with warnings.catch_warnings():
        # Evidently 0.7.23 at import assigns to numpy.core (deprecated in numpy 2) and pulls
        # litestar 2.23, whose Dependency/DependencyKwarg it uses are deprecated. Neither is
        # ours to fix and neither matters to the statistics.
        warnings.filterwarnings("ignore", r"numpy\.core is deprecated", DeprecationWarning)
        warnings.filterwarnings(
            "ignore", r".*deprecated (function 'Dependency'|class 'DependencyKwarg')"
        )
        from evidently.legacy.calculations.stattests import registry  # type: ignore[import-untyped]
    return registry


@dataclass(frozen=True, slots=True)
class Statistic:
    method: str
    threshold: float
    score: float
    drifted: bool
    notes: tuple[str, ...]
    """Warnings the stat test raised, e.g. scipy switching K-S from exact to asymptotic."""


# catch_warnings swaps process-wide state; two threads inside it at once can leave the
# other's recorder installed for good. Drift checks take this lock; the tests are CPU-bound
# and hold the GIL anyway, so nothing is lost by running them one at a time.
_WARNINGS_LOCK = threading.Lock()


def column_statistic(
    reference: pd.Series[Any],
    current: pd.Series[Any],
    kind: Kind,
    method: str | None,
    threshold: float | None,
) -> Statistic:
    """Evidently's drift test of one column: its method choice, score, flag and threshold.

    `reference` and `current` hold only finite values, as after Evidently's own cleaning.
    Raises what the stat test raises (ValueError, ZeroDivisionError, ...) on data it
    cannot handle, e.g. Anderson-Darling on a constant column.
    """
    registry = evidently_stattests()
    column_type = (
        registry.ColumnType.Numerical if kind == "num" else registry.ColumnType.Categorical
    )
    with _WARNINGS_LOCK, warnings.catch_warnings(record=True) as caught:
        # Recorded, not raised: a stat test's warning describes its result (chi-square's
        # divide by zero for a category new in the current window is what gives p = 0), so
        # it belongs in the result next to the score.
        warnings.simplefilter("always")
        stattest = registry.get_stattest(reference, current, column_type, method)
        result = stattest(reference, current, column_type, threshold)
    notes = tuple(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught))
    return Statistic(
        method=stattest.name,
        threshold=float(result.actual_threshold),
        score=float(result.drift_score),
        drifted=bool(result.drifted),
        notes=notes,
    )
