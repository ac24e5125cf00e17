"""The feedback body's rules: `{"id", "label"}` or `{"feedback": [...]}` → FeedbackItems.

A label belongs to one logged row, named by the request id the client sent with the
inference (the OIP `id`) and the row's index in that request (`row`, 0 by default). It is
a number (true/false become 1/0) or a non-empty list of numbers (one per output); one
body's labels all have one shape. `timestamp` (ISO 8601 with a zone) says when the truth
became known. Every error names the item and the field (`feedback[3].label ...`), and
unknown fields are refused (a typo must not drop a label silently).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from registry.errors import BadRequest, MlgateError
from registry.quality.problem import Problem

__all__ = [
    "MAX_ID_CHARS",
    "FeedbackItem",
    "Label",
    "ParsedFeedback",
    "TooManyFeedbackItems",
    "check_labels",
    "parse_feedback",
]

Label = int | float | list[int | float]
MAX_ID_CHARS = 512  # the feedback table's request_id column
MAX_SOURCE_CHARS = 64
MAX_ROW = 2**31 - 1  # the log's `row` column is int32
_ITEM_FIELDS = ("id", "row", "label", "timestamp")
_BODY_FIELDS = ("feedback", "source")


class TooManyFeedbackItems(MlgateError):
    status_code = 413


@dataclass(frozen=True, slots=True)
class FeedbackItem:
    request_id: str
    label: Label
    row: int = 0
    known_at: datetime | None = None
    """When the truth became known (the client's `timestamp`), if it said."""


@dataclass(frozen=True, slots=True)
class ParsedFeedback:
    items: list[FeedbackItem]
    source: str


def parse_feedback(document: Any, *, max_items: int) -> ParsedFeedback:
    """`{"id", "label", ["row"], ["timestamp"], ["source"]}` or `{"feedback": [...], ["source"]}`.

    Raises BadRequest naming the item and field, TooManyFeedbackItems past `max_items`.
    """
    if not isinstance(document, dict):
        raise BadRequest("the feedback body must be a JSON object")
    if "feedback" in document:
        _only(document, _BODY_FIELDS, "")
        entries = document["feedback"]
        if not isinstance(entries, list) or not entries:
            raise BadRequest("'feedback' must be a non-empty list of {id, label} objects")
        if len(entries) > max_items:
            raise TooManyFeedbackItems(
                f"'feedback' has {len(entries)} items; the limit is {max_items} "
                "(MLGATE_MAX_ROWS_PER_REQUEST): send them in several bodies"
            )
        items = [_item(entry, f"feedback[{i}].") for i, entry in enumerate(entries)]
        first = "feedback[0].label"
        wheres = [f"feedback[{i}].label" for i in range(len(items))]
    else:
        _only(document, (*_ITEM_FIELDS, "source"), "")
        single = {k: v for k, v in document.items() if k != "source"}
        items, first, wheres = [_item(single, "")], "label", ["label"]
    for item, where in zip(items, wheres, strict=True):
        if _shape(item.label) != _shape(items[0].label):
            raise BadRequest(
                f"{where} is {_describe(item.label)}, but {first} is "
                f"{_describe(items[0].label)}: a model's labels all have one shape"
            )
    source = document.get("source", "api")
    if not isinstance(source, str) or not 0 < len(source) <= MAX_SOURCE_CHARS:
        raise BadRequest(f"'source' must be a string of 1 to {MAX_SOURCE_CHARS} characters")
    return ParsedFeedback(items, source)


def check_labels(parsed: ParsedFeedback, problem: Problem | None, model: str) -> None:
    """Labels the model's problem can use, or a 400 naming the first that is not: a class
    index 0..k-1 for a classifier (true/false for binary), one finite number for a
    regressor. A model whose problem is unknown takes any number, as before."""
    if problem is None:
        return
    single = len(parsed.items) == 1 and not isinstance(parsed.items[0].label, list)
    for index, item in enumerate(parsed.items):
        where = "label" if single else f"feedback[{index}].label"
        label = item.label
        if isinstance(label, list):
            if len(label) != 1:
                raise BadRequest(
                    f"{where} is a list of {len(label)} values, but {model} is a "
                    f"{problem.task} model: one {_expected(problem)} per row"
                )
            label = label[0]
        if problem.classifier:
            classes = problem.classes or 2
            if float(label) != int(label) or not 0 <= int(label) < classes:
                raise BadRequest(
                    f"{where} is {_shown(label)}, but {model} is a {problem.task} model: "
                    f"{_expected(problem)}"
                )


def _expected(problem: Problem) -> str:
    if not problem.classifier:
        return "a finite number"
    classes = problem.classes or 2
    extra = " (or true/false)" if classes == 2 else ""
    return f"a class index from 0 to {classes - 1}{extra}"


def _only(entry: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
    extra = sorted(set(entry) - set(allowed))
    if extra:
        raise BadRequest(f"{where}{extra[0]}: unknown field; the fields are {', '.join(allowed)}")


def _item(entry: Any, where: str) -> FeedbackItem:
    if not isinstance(entry, dict):
        raise BadRequest(f"{where.rstrip('.') or 'the body'} must be a JSON object")
    _only(entry, _ITEM_FIELDS, where)
    request_id = entry.get("id")
    if not isinstance(request_id, str) or not 0 < len(request_id) <= MAX_ID_CHARS:
        raise BadRequest(
            f"{where}id must be the request's id, a string of 1 to {MAX_ID_CHARS} characters"
        )
    row = entry.get("row", 0)
    if isinstance(row, bool) or not isinstance(row, int) or not 0 <= row <= MAX_ROW:
        raise BadRequest(f"{where}row must be the row's index in its request, an integer >= 0")
    if "label" not in entry:
        raise BadRequest(f"{where}label is missing: a number, true/false, or a list of numbers")
    return FeedbackItem(request_id, _label(entry["label"], where), row, _time(entry, where))


def _label(value: Any, where: str) -> Label:
    if isinstance(value, list):
        if not value:
            raise BadRequest(f"{where}label is an empty list")
        return [_number(v, f"{where}label[{j}]") for j, v in enumerate(value)]
    return _number(value, f"{where}label")


def _number(value: Any, where: str) -> int | float:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int) and -(2**63) <= value < 2**63:
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    raise BadRequest(
        f"{where} must be a finite number or true/false (a list of them for several "
        f"outputs), got {_shown(value)}"
    )


def _time(entry: dict[str, Any], where: str) -> datetime | None:
    text = entry.get("timestamp")
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.utcoffset() is None:
        raise BadRequest(
            f"{where}timestamp must be an ISO 8601 time with its zone, e.g. "
            f"2026-05-01T12:00:00Z; got {_shown(text)}"
        )
    return moment.astimezone(UTC)


def _shown(value: Any) -> str:
    """A value for an error message, cut short: a client may send megabytes."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def _shape(label: Label) -> int | None:
    return len(label) if isinstance(label, list) else None


def _describe(label: Label) -> str:
    return f"a list of {len(label)} values" if isinstance(label, list) else "a number"
