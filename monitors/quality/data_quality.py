"""Data quality of one monitor window against the version's reference: pure, no I/O.

Drift asks whether the inputs moved; these checks ask whether they are broken. A unit
change, an upstream outage filling defaults, a changed encoding or a client sending the
wrong tensors each hurt every prediction at once, and no retraining fixes them: a breach
here should block retraining (reference/quality.md §6.5) and page someone instead.

Checks (after NannyML, Evidently and SageMaker's, reference/quality.md §5):
- refused: the share of rows refused at validation (wrong datatype, shape, NaN...), from
  the unsampled counts `monitors.log.counts.read_counts` gives, by reason;
- out_of_range: per continuous feature, the share of values outside the reference's
  [min, max] (a warning: drift past the edge), and of values further out than the range is
  wide (a breach: another scale, a unit change); for a discrete feature an out-of-range
  value is also unseen, and reported so;
- unseen: per discrete feature, the share of values the reference never holds, and the
  most frequent of them;
- constant: a feature whose window holds one value while the reference varies;
- missing: per feature, the share of NaN (only possible where a deployment allows
  non-finite values).

Warnings are drift-like, shown and kept; breaches are broken data. So that a clean window
stays quiet, a warning or missing-share threshold is raised to what a window drawn from the
reference's own distribution reaches by chance (+4 standard deviations, from the profile:
see `data_profile`); the threshold a finding reports is the one applied. A window with
fewer than `min_rows` logged rows gets its figures but no per-feature finding (a feature
with fewer than `min_rows` values present, the rest NaN, no range or unseen finding), and
fewer than `min_rows` answered + refused rows no refused finding.

Cost: a few vectorised passes over the window's rows × features (the monitor's window is
bounded); one `np.isin` and `np.unique` per discrete feature.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from monitors.quality.data_profile import (
    DEFAULT_MAX_DISCRETE,
    FeatureProfile,
    ReferenceProfile,
    profile_reference,
)
from monitors.quality.data_result import (
    Check,
    DataQualityResult,
    DataQualityThresholds,
    FeatureQuality,
    Finding,
)
from registry.errors import BadRequest

if TYPE_CHECKING:  # pandas is imported where a function needs it, not by the gateway
    import pandas as pd

__all__ = [
    "DEFAULT_MAX_DISCRETE",
    "DataQualityResult",
    "DataQualityThresholds",
    "FeatureProfile",
    "FeatureQuality",
    "Finding",
    "ReferenceProfile",
    "check_window",
    "profile_reference",
]

_CHANCE_SIGMAS = 4.0  # per feature, over hundreds of features and windows: rare, not never
_CONSTANT_CHANCE = 1e-6  # a window constant by chance less often than this is not chance
_TOP_UNSEEN = 5


def check_window(
    profile: ReferenceProfile,
    frame: pd.DataFrame,
    *,
    answered_rows: int,
    refused_rows: Mapping[str, int],
    thresholds: DataQualityThresholds,
) -> DataQualityResult:
    """The window's figures and findings. `frame`: `drift_frame` of the logged window."""
    absent = sorted(set(profile.features) - set(frame.columns))
    if absent:
        raise BadRequest(f"the window lacks the profiled columns {absent}; another layout?")
    names = list(profile.features)
    rows = len(frame)
    values = frame[names].to_numpy(dtype=np.float64) if names else np.empty((rows, 0))
    breaches: list[Finding] = []
    warnings: list[Finding] = []
    refused = {reason: int(n) for reason, n in sorted(refused_rows.items()) if n}
    refused_total = sum(refused.values())
    total = answered_rows + refused_total
    refused_share = refused_total / total if total else 0.0
    if total >= thresholds.min_rows and refused_share > thresholds.max_refused_share:
        breaches.append(_refused_finding(refused, total, refused_share, thresholds))

    missing = np.isnan(values)
    present = rows - missing.sum(axis=0)
    minimum = np.array([_or(p.minimum, -np.inf) for p in profile.features.values()])
    maximum = np.array([_or(p.maximum, np.inf) for p in profile.features.values()])
    denominator = np.maximum(present, 1)
    below = (values < minimum).sum(axis=0) / denominator
    above = (values > maximum).sum(axis=0) / denominator
    span = np.where(np.isfinite(maximum - minimum), maximum - minimum, np.inf)
    far = ((values < minimum - span) | (values > maximum + span)).sum(axis=0) / denominator
    lowest = np.where(missing, np.inf, values).min(axis=0, initial=np.inf)
    highest = np.where(missing, -np.inf, values).max(axis=0, initial=-np.inf)

    features: dict[str, FeatureQuality] = {}
    judged = rows >= thresholds.min_rows
    for index, (name, reference) in enumerate(profile.features.items()):
        quality = FeatureQuality(
            feature=name,
            present=int(present[index]),
            missing_share=float((rows - present[index]) / rows) if rows else 0.0,
            below_share=float(below[index]),
            above_share=float(above[index]),
            unseen_share=None,
            constant=bool(
                present[index] > 0
                and lowest[index] == highest[index]
                and reference.varies
                and reference.top_share ** int(present[index]) < _CONSTANT_CHANCE
            ),
            far_share=float(far[index]),
        )
        if reference.values is not None:
            quality = _with_unseen(quality, values[:, index], missing[:, index], reference)
        features[name] = quality
        if judged:
            _judge(quality, reference, rows, lowest[index], thresholds, breaches, warnings)
    return DataQualityResult(
        rows, answered_rows, refused, refused_share, features, breaches, warnings
    )


def _with_unseen(
    quality: FeatureQuality, column: np.ndarray, missing: np.ndarray, reference: FeatureProfile
) -> FeatureQuality:
    unseen = ~missing & ~np.isin(column, np.asarray(reference.values, dtype=np.float64))
    count = int(unseen.sum())
    top: list[tuple[float, int]] = []
    if count:
        found, counts = np.unique(column[unseen], return_counts=True)
        order = np.argsort(-counts, kind="stable")[:_TOP_UNSEEN]
        top = [(float(found[i]), int(counts[i])) for i in order]
    share = count / quality.present if quality.present else 0.0
    return FeatureQuality(
        quality.feature,
        quality.present,
        quality.missing_share,
        quality.below_share,
        quality.above_share,
        share,
        top,
        quality.constant,
    )


def _judge(
    quality: FeatureQuality,
    reference: FeatureProfile,
    rows: int,
    value: float,
    thresholds: DataQualityThresholds,
    breaches: list[Finding],
    warnings: list[Finding],
) -> None:
    name, m = quality.feature, quality.present
    if quality.constant:
        breaches.append(
            Finding(
                "constant",
                name,
                1.0,
                1.0,
                f"{name}: all {m:,} values are {_number(value)} while the reference holds "
                f"{reference.distinct:,} distinct values: an upstream filling a default?",
            )
        )
    limit = max(
        thresholds.max_missing_share, _chance(reference.missing_share, rows, reference.present)
    )
    if quality.missing_share > limit:
        breaches.append(
            Finding(
                "missing",
                name,
                quality.missing_share,
                limit,
                f"{name}: {_pct(quality.missing_share)} of values missing (NaN) (threshold "
                f"{_pct(limit)}; reference {_pct(reference.missing_share)}): an upstream "
                "stopped filling it?",
            )
        )
    if m < thresholds.min_rows:
        return  # the values present are too few for a share of them to mean anything
    if quality.unseen_share is not None:
        chance = reference.singletons / reference.present if reference.present else 0.0
        warn = max(thresholds.warn_unseen_share, _chance(chance, m, reference.present))
        seen = ", ".join(f"{_number(v)} ({c:,})" for v, c in quality.top_unseen)
        _grade(
            "unseen",
            quality,
            quality.unseen_share,
            warn,
            thresholds.max_unseen_share,
            f"of values never seen in the reference, most often {seen}",
            ("a new category, or drift?", "a changed encoding?"),
            breaches,
            warnings,
        )
    elif reference.minimum is not None and reference.maximum is not None:
        chance = 2 / (reference.present + 1)
        warn = max(thresholds.warn_out_of_range_share, _chance(chance, m, reference.present))
        low, high = _number(reference.minimum), _number(reference.maximum)
        if quality.below_share == 0:
            where = f"of values above the reference's maximum {high}"
        elif quality.above_share == 0:
            where = f"of values below the reference's minimum {low}"
        else:
            where = (
                f"of values outside the reference's range [{low}, {high}] "
                f"({_pct(quality.below_share)} below, {_pct(quality.above_share)} above)"
            )
        if quality.far_share > thresholds.max_out_of_range_share:
            where += f", {_pct(quality.far_share)} further out than the range is wide"
            breaches.append(
                Finding(
                    "out_of_range",
                    name,
                    quality.far_share,
                    thresholds.max_out_of_range_share,
                    f"{name}: {_pct(quality.out_of_range_share)} {where} (threshold "
                    f"{_pct(thresholds.max_out_of_range_share)}): a unit change?",
                )
            )
        elif quality.out_of_range_share > warn:
            warnings.append(
                Finding(
                    "out_of_range",
                    name,
                    quality.out_of_range_share,
                    warn,
                    f"{name}: {_pct(quality.out_of_range_share)} {where} (threshold "
                    f"{_pct(warn)}): drift past the reference's range?",
                )
            )


def _grade(
    check: Check,
    quality: FeatureQuality,
    share: float,
    warn: float,
    breach: float,
    what: str,
    hints: tuple[str, str],
    breaches: list[Finding],
    warnings: list[Finding],
) -> None:
    broken = share > breach
    if not broken and share <= warn:
        return
    threshold = breach if broken else warn
    message = (
        f"{quality.feature}: {_pct(share)} {what} (threshold {_pct(threshold)}): {hints[broken]}"
    )
    (breaches if broken else warnings).append(
        Finding(check, quality.feature, share, threshold, message)
    )


def _refused_finding(
    refused: dict[str, int], total: int, share: float, thresholds: DataQualityThresholds
) -> Finding:
    reasons = ", ".join(
        f"{reason} {_pct(n / total)}" for reason, n in sorted(refused.items(), key=lambda x: -x[1])
    )
    return Finding(
        "refused",
        None,
        share,
        thresholds.max_refused_share,
        f"{_pct(share)} of rows refused at validation (threshold "
        f"{_pct(thresholds.max_refused_share)}): {reasons}: a client sends what the model "
        "does not take",
    )


def _chance(p: float, window: int, reference: int) -> float:
    """A share that a window of the reference's own distribution stays under (+4σ): the
    binomial noise of the window plus that of the reference's estimate of p."""
    if p <= 0:
        return 0.0
    spread = p * (1 - p) * (1 / max(window, 1) + 1 / max(reference, 1))
    return p + _CHANCE_SIGMAS * math.sqrt(spread)


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _pct(share: float) -> str:
    """62%, 2.5%, 5% (not 5.0%), 0.04%: two significant figures below 10%."""
    percent = share * 100
    if percent >= 10:
        return f"{percent:.0f}%"
    text = f"{percent:.1f}" if percent >= 0.1 or percent == 0 else f"{percent:.2f}"
    return text.removesuffix(".0") + "%"


def _number(value: float) -> str:
    """412,000, 256,412 (not 2.564e+05), 3, 0.03471, 1.5e+20: what a person reads at once."""
    if not math.isfinite(value) or abs(value) >= 1e15:
        return f"{value:.4g}"
    if abs(value) >= 1000 or value == round(value):
        return f"{value:,.0f}"
    return f"{value:.4g}"
