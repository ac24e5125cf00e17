"""How close an exported model's outputs must be to the eager model's, by dtype.

fp32 defaults to rtol 1e-4, atol 1e-5: looser than `torch.testing.assert_close`'s
1.3e-6 relative, because a graph optimiser may legitimately reorder float sums, and
tight enough that a lost branch or a wrong weight never passes. Integer and boolean
outputs must match exactly. An element passes when |actual - expected| <= atol +
rtol * |expected| (NaN matches NaN).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from registry.errors import InvalidModelInput

__all__ = ["DEFAULT_TOLERANCES", "Tolerance", "tolerances"]


@dataclass(frozen=True, slots=True)
class Tolerance:
    rtol: float
    atol: float

    def __post_init__(self) -> None:
        if not (self.rtol >= 0 and self.atol >= 0):  # also refuses NaN
            raise InvalidModelInput(
                f"tolerances must be >= 0, got rtol={self.rtol}, atol={self.atol}"
            )


DEFAULT_TOLERANCES: Mapping[str, Tolerance] = {
    "float64": Tolerance(rtol=1e-7, atol=1e-7),
    "float32": Tolerance(rtol=1e-4, atol=1e-5),
    "float16": Tolerance(rtol=1e-3, atol=1e-3),
    "bfloat16": Tolerance(rtol=1.6e-2, atol=1e-2),
}
EXACT = Tolerance(rtol=0.0, atol=0.0)


def tolerances(
    overrides: Mapping[str, Tolerance] | None = None,
    *,
    rtol: float | None = None,
    atol: float | None = None,
) -> dict[str, Tolerance]:
    """Defaults, then per-dtype `overrides`, then `rtol`/`atol` for every float dtype."""
    table = dict(DEFAULT_TOLERANCES)
    table.update(overrides or {})
    if rtol is not None or atol is not None:
        for dtype, tolerance in list(table.items()):
            table[dtype] = Tolerance(
                rtol=tolerance.rtol if rtol is None else rtol,
                atol=tolerance.atol if atol is None else atol,
            )
    return table


def for_dtype(table: Mapping[str, Tolerance], dtype: str) -> Tolerance:
    return table.get(dtype, EXACT)
