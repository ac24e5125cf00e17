"""Model names, aliases and the `name`, `name:3`, `name@alias` reference syntax.

Names end up in file paths, URLs and Triton repository folders, so they are strict:
lowercase letters, digits, `.`, `_` and `-`, starting and ending with a letter or digit,
at most 64 characters, and never `..`. Aliases are lowercase identifiers; `latest` is
reserved (it always means the newest ready version) and so is `v<digits>`, which reads
like a version number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from registry.errors import InvalidName, InvalidReference

__all__ = [
    "ID_RULE",
    "LATEST",
    "MAX_ID",
    "ModelRef",
    "check_alias",
    "check_model_name",
    "parse_ref",
    "positive_id",
    "positive_id_text",
]

MAX_ID = 2**63 - 1
"""The largest version, task or check number: the databases' 64-bit INTEGER/BIGINT."""
ID_RULE = f"a positive integer in ASCII digits, at most {MAX_ID}"

MAX_NAME_LENGTH = 64
LATEST = "latest"
_NAME_RE = re.compile(r"[a-z0-9](?:[a-z0-9._-]*[a-z0-9])?")
_ALIAS_RE = re.compile(r"[a-z][a-z0-9_-]*")
_VERSION_LIKE_RE = re.compile(r"v\d+")
_NAME_RULE = (
    "lowercase letters, digits, '.', '_' and '-', starting and ending with a letter or "
    f"digit, at most {MAX_NAME_LENGTH} characters, no '..'"
)
_ALIAS_RULE = (
    "a lowercase letter followed by lowercase letters, digits, '_' or '-', "
    f"at most {MAX_NAME_LENGTH} characters"
)


def check_model_name(name: str) -> str:
    """Return `name` if it is a valid model name, else raise `InvalidName`."""
    if not isinstance(name, str) or not name:
        raise InvalidName(f"model name is empty; expected {_NAME_RULE}")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidName(
            f"model name {name[:20]!r}... is {len(name)} characters long; expected {_NAME_RULE}"
        )
    if ".." in name or not _NAME_RE.fullmatch(name):
        raise InvalidName(f"model name {name!r} is not allowed; expected {_NAME_RULE}")
    return name


def check_alias(alias: str) -> str:
    """Return `alias` if it may be set by a user, else raise `InvalidName`."""
    if not isinstance(alias, str) or not alias:
        raise InvalidName(f"alias is empty; expected {_ALIAS_RULE}")
    if len(alias) > MAX_NAME_LENGTH:
        raise InvalidName(
            f"alias {alias[:20]!r}... is {len(alias)} characters long; expected {_ALIAS_RULE}"
        )
    if not _ALIAS_RE.fullmatch(alias):
        raise InvalidName(f"alias {alias!r} is not allowed; expected {_ALIAS_RULE}")
    if alias == LATEST:
        raise InvalidName("alias 'latest' is reserved: it always means the newest ready version")
    if _VERSION_LIKE_RE.fullmatch(alias):
        raise InvalidName(f"alias {alias!r} is reserved: it reads like a version number")
    return alias


@dataclass(frozen=True, slots=True)
class ModelRef:
    """A parsed reference: a model name plus at most one of a version or an alias.

    Neither means "the newest version"; the alias `latest` means "the newest ready
    version" (one with an artifact that passed the parity gate).
    """

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name


def parse_ref(text: str) -> ModelRef:
    """Parse `name`, `name:3` or `name@alias`."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidReference(
            "model reference is empty; expected NAME, NAME:VERSION or NAME@ALIAS"
        )
    text = text.strip()
    if ":" in text and "@" in text:
        raise InvalidReference(
            f"model reference {text!r} has both a version and an alias; use NAME:VERSION "
            "or NAME@ALIAS"
        )
    if ":" in text:
        name, _, version_text = text.partition(":")
        version = positive_id_text(version_text)
        if version is None:
            raise InvalidReference(
                f"model reference {text[:100]!r}: version {version_text[:40]!r} is not {ID_RULE}"
            )
        return ModelRef(check_model_name(name), version=version)
    if "@" in text:
        name, _, alias = text.partition("@")
        if alias != LATEST:
            check_alias(alias)
        return ModelRef(check_model_name(name), alias=alias)
    return ModelRef(check_model_name(text))


def positive_id_text(text: str) -> int | None:
    """`text` as a version, task or check number, or None: ASCII digits only, 1 to `MAX_ID`.

    `str.isdigit` alone also accepts '³' (which `int` then refuses) and '٣' (which `int`
    reads as 3), and `int` takes any size, which the database cannot store.
    """
    if not (text.isascii() and text.isdigit()) or len(text.lstrip("0")) > len(str(MAX_ID)):
        return None
    value = int(text)
    return value if 1 <= value <= MAX_ID else None


def positive_id(value: object) -> int | None:
    """A JSON value as a version, task or check number, or None: an integer (not a boolean,
    not a float) from 1 to `MAX_ID`, or a string `positive_id_text` accepts."""
    if isinstance(value, str):
        return positive_id_text(value)
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_ID:
        return value
    return None
