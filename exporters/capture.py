"""Keep what torch says while exporting in the export's record, not on the user's terminal.

The exporters print progress, dump graphs on failure, log through the `torch` logger and
raise warnings, some of which matter (a TracerWarning means a traced graph may have lost
a branch). Inside `captured()` all of it is recorded: warnings by category and message,
printed and logged text as lines. TorchScript's own deprecation warnings (torch >= 2.5
deprecates `torch.jit.*`) are expected: mlgate still writes TorchScript because Triton's
pytorch backend serves it, so they are counted, not repeated.
"""

from __future__ import annotations

import io
import logging
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Captured", "captured", "is_torchscript_deprecation", "summarise_error"]

_TORCHSCRIPT_DEPRECATION = re.compile(r"`torch\.jit\.\w+` is deprecated")
_MAX_LINES = 200
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def is_torchscript_deprecation(message: str) -> bool:
    return bool(_TORCHSCRIPT_DEPRECATION.search(message))


@dataclass
class Captured:
    warnings: list[dict[str, str]] = field(default_factory=list)
    torchscript_deprecations: int = 0
    output: list[str] = field(default_factory=list)

    def categories(self) -> set[str]:
        return {w["category"] for w in self.warnings}

    def to_json(self) -> dict[str, Any]:
        return {
            "warnings": self.warnings,
            "torchscript_deprecations_expected": self.torchscript_deprecations,
            "output_tail": self.output[-40:],
        }


class _Recorder(logging.Handler):
    def __init__(self, lines: list[str]) -> None:
        super().__init__(level=logging.INFO)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.name}: {record.getMessage()}")


@contextmanager
def captured() -> Iterator[Captured]:
    record = Captured()
    stdout, stderr = io.StringIO(), io.StringIO()
    recorder = _Recorder(record.output)
    # torch gives several of its loggers ("torch", "torch.onnx", ...) their own stderr
    # handlers; each is pointed at the recorder for the duration.
    loggers = [logging.getLogger("torch")] + [
        logger
        for name, logger in logging.root.manager.loggerDict.items()
        if name.startswith("torch.") and isinstance(logger, logging.Logger) and logger.handlers
    ]
    saved = [(logger, logger.handlers[:]) for logger in loggers]
    for logger in loggers:
        logger.handlers = [recorder]
    try:
        with (
            warnings.catch_warnings(record=True) as caught,
            redirect_stdout(stdout),
            redirect_stderr(stderr),
        ):
            warnings.simplefilter("always")
            yield record
    finally:
        for logger, handlers in saved:
            logger.handlers = handlers
        seen: set[tuple[str, str]] = set()
        for item in caught:
            message = str(item.message)
            if is_torchscript_deprecation(message):
                record.torchscript_deprecations += 1
                continue
            key = (item.category.__name__, message)
            if key not in seen:
                seen.add(key)
                record.warnings.append({"category": key[0], "message": message[:1000]})
        for text in (stdout.getvalue(), stderr.getvalue()):
            record.output.extend(line for line in text.splitlines() if line.strip())
        del record.output[:-_MAX_LINES]


def summarise_error(exc: BaseException, limit: int = 600) -> str:
    """One line saying what went wrong, from torch's often long, boilerplate-led messages.

    torch.onnx puts the cause under "## Exception summary" and the user's offending line
    under "The following call raised this error:"; both are kept when present.
    """
    lines = [line.strip() for line in _ANSI.sub("", str(exc)).splitlines() if line.strip()]
    summary = lines[0] if lines else ""
    if "## Exception summary" in lines:
        after = lines[lines.index("## Exception summary") + 1 :]
        if after:
            summary = after[0]
    for index, line in enumerate(lines):
        if line.startswith("The following call raised this error") and index + 2 < len(lines):
            summary += f" (at {lines[index + 1]}: {lines[index + 2]})"
            break
    return f"{type(exc).__name__}: {summary}"[:limit]
