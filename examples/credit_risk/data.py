"""Synthetic credit-risk applications with a known ground truth, and drifted variants.

Every row is a loan application with 14 numeric features. Whether the applicant
defaults is drawn from `default_probability(features)`, a fixed, documented function,
so a model's quality can be judged against the truth and not only against labels.

`generate(n, seed, drift=Drift(...))` produces the same population moved in known ways:
covariate drift (lower incomes, higher utilisation, more late payments, older
applicants) and, with `concept_shift`, a change in the ground truth itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["FEATURES", "LABEL", "Drift", "default_probability", "generate", "source_uri"]

FEATURES = [
    "age",
    "income",
    "debt_to_income",
    "credit_utilization",
    "credit_lines",
    "late_payments_30d",
    "late_payments_90d",
    "months_employed",
    "loan_amount",
    "loan_term_months",
    "savings",
    "dependents",
    "years_at_address",
    "recent_inquiries",
]
LABEL = "default"


@dataclass(frozen=True, slots=True)
class Drift:
    """How a drifted population differs from the training one (identity by default)."""

    income_factor: float = 1.0
    """Multiplies incomes (0.7 = a 30% fall)."""
    utilization_shift: float = 0.0
    """Added to credit utilisation before clipping to [0, 1]."""
    late_payment_factor: float = 1.0
    """Multiplies the rate of late payments."""
    age_shift: float = 0.0
    """Years added to every applicant's age."""
    concept_shift: float = 0.0
    """Added to the utilisation coefficient of the ground truth: the rules change."""

    @classmethod
    def recession(cls) -> Drift:
        return cls(
            income_factor=0.7, utilization_shift=0.15, late_payment_factor=2.0, concept_shift=0.8
        )


def source_uri(rows: int, seed: int, drift: Drift | None = None) -> str:
    base = f"generated://examples.credit_risk?rows={rows}&seed={seed}"
    if drift is None or drift == Drift():
        return base
    moved = {
        k: getattr(drift, k)
        for k in Drift.__dataclass_fields__
        if getattr(drift, k) != getattr(Drift(), k)
    }
    return base + "".join(f"&{k}={v}" for k, v in sorted(moved.items()))


def generate(rows: int, seed: int = 0, drift: Drift | None = None) -> pd.DataFrame:
    """`rows` applications with the features and a sampled `default` label (0/1)."""
    if rows < 1:
        raise ValueError(f"rows must be >= 1, got {rows}")
    drift = drift or Drift()
    rng = np.random.default_rng(seed)
    age = np.clip(rng.normal(41, 12, rows) + drift.age_shift, 18, 90)
    income = np.exp(rng.normal(np.log(52_000), 0.45, rows)) * drift.income_factor
    debt_to_income = np.clip(rng.beta(2.2, 5.0, rows) * 0.9, 0.0, 0.9)
    utilization = np.clip(rng.beta(2.0, 3.0, rows) + drift.utilization_shift, 0.0, 1.0)
    credit_lines = rng.poisson(5, rows).astype(np.float64)
    late_30 = rng.poisson(0.4 * drift.late_payment_factor, rows).astype(np.float64)
    late_90 = rng.poisson(0.12 * drift.late_payment_factor, rows).astype(np.float64)
    months_employed = np.clip(rng.gamma(2.0, 30.0, rows), 0, 480)
    loan_amount = np.exp(rng.normal(np.log(15_000), 0.6, rows))
    loan_term = rng.choice([12.0, 24.0, 36.0, 48.0, 60.0], rows)
    savings = np.exp(rng.normal(np.log(6_000), 1.1, rows)) * drift.income_factor
    dependents = rng.poisson(1.1, rows).astype(np.float64)
    years_at_address = np.clip(rng.gamma(1.6, 4.0, rows), 0, 60)
    inquiries = rng.poisson(1.0, rows).astype(np.float64)
    frame = pd.DataFrame(
        {
            "age": age,
            "income": income,
            "debt_to_income": debt_to_income,
            "credit_utilization": utilization,
            "credit_lines": credit_lines,
            "late_payments_30d": late_30,
            "late_payments_90d": late_90,
            "months_employed": months_employed,
            "loan_amount": loan_amount,
            "loan_term_months": loan_term,
            "savings": savings,
            "dependents": dependents,
            "years_at_address": years_at_address,
            "recent_inquiries": inquiries,
        }
    ).astype(np.float32)
    probability = default_probability(frame, concept_shift=drift.concept_shift)
    frame[LABEL] = (rng.random(rows) < probability).astype(np.int64)
    return frame


def default_probability(frame: pd.DataFrame, concept_shift: float = 0.0) -> np.ndarray:
    """The ground truth: P(default | features). Monotone where lending sense says so."""
    f = {name: frame[name].to_numpy(np.float64) for name in FEATURES}
    logit = (
        -2.4
        + 2.2 * (f["debt_to_income"] - 0.3)
        + (2.0 + concept_shift) * (f["credit_utilization"] - 0.4)
        + 0.55 * f["late_payments_30d"]
        + 1.1 * f["late_payments_90d"]
        - 0.6 * np.log(f["income"] / 52_000)
        - 0.25 * np.minimum(f["months_employed"], 120) / 60
        + 0.5 * np.minimum(f["loan_amount"] / f["income"], 3.0)
        + 0.006 * f["loan_term_months"]
        - 0.18 * np.log1p(f["savings"] / 1_000)
        + 0.08 * f["dependents"]
        - 0.02 * np.minimum(f["years_at_address"], 20)
        + 0.25 * f["recent_inquiries"]
        + 0.0008 * (f["age"] - 45) ** 2
        - 0.05 * np.maximum(f["credit_lines"] - 8, 0)
    )
    return 1.0 / (1.0 + np.exp(-logit))
