"""Exporters: torch → ONNX / TorchScript, each artifact gated by parity with the eager model.

from exporters import export
result = export(registry, "credit-risk:1", "onnx")   # stored as passed or failed
"""

from exporters.export import FORMATS, ExportResult, export
from exporters.imports import import_file, parse_input_spec
from exporters.tolerances import DEFAULT_TOLERANCES, Tolerance

__all__ = [
    "DEFAULT_TOLERANCES",
    "FORMATS",
    "ExportResult",
    "Tolerance",
    "export",
    "import_file",
    "parse_input_spec",
]
