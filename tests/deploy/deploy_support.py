"""What the deploy/ tests share: reading the files, and checking what they ask of mlgate.

Two checks tie deploy/ to the code, so that a renamed setting or CLI option fails a test
instead of a deployment:

- `unknown_settings` compares `MLGATE_*` names with the fields of the real settings
  classes (imported, not listed here);
- `cli_usage_error` parses an `mlgate` argument list with the real typer app, without
  running the command, and returns typer's own message when the list does not parse.

`interpolate` applies compose's `${VAR}` substitution rules, so the compose tests can see
the file as compose would after reading `.env`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import typer
import yaml  # type: ignore[import-untyped]  # PyYAML ships no stubs

__all__ = [
    "DEPLOY",
    "REPO",
    "InterpolationError",
    "cli_usage_error",
    "interpolate",
    "load_yaml",
    "load_yaml_all",
    "read_env_file",
    "setting_env_names",
    "unknown_settings",
    "variables",
    "volume_path",
]

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def load_yaml_all(path: Path) -> list[dict[str, Any]]:
    """Every non-empty document of a multi-document YAML file."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


# --- settings -----------------------------------------------------------------------


def setting_env_names() -> set[str]:
    """`MLGATE_*` environment names of every settings class, from their fields."""
    from monitors.settings import MonitorSettings
    from registry.settings import RegistrySettings
    from services.gateway.settings import GatewaySettings

    names: set[str] = set()
    for cls in (GatewaySettings, MonitorSettings, RegistrySettings):
        prefix = str(cls.model_config.get("env_prefix", ""))
        for field_name, info in cls.model_fields.items():
            names.add(f"{prefix}{info.alias or field_name}".upper())
    return names


def unknown_settings(names: Iterable[str]) -> set[str]:
    """The `MLGATE_*` names among `names` that no settings class reads."""
    return {name for name in names if name.startswith("MLGATE_")} - setting_env_names()


def volume_path(path: str, mounts: Mapping[str, str]) -> tuple[str, str]:
    """(volume, path inside it) for a container path, given mount path -> volume: the
    deepest mount holding it decides."""
    target = PurePosixPath(path)
    holding = [PurePosixPath(m) for m in mounts if target.is_relative_to(m)]
    if not holding:
        raise ValueError(f"{path} is on no mounted volume")
    mount = max(holding, key=lambda m: len(m.parts))
    return mounts[str(mount)], str(target.relative_to(mount))


# --- the CLI ------------------------------------------------------------------------


def cli_usage_error(args: list[str]) -> str | None:
    """None if `mlgate ARGS` parses (command, options, values), else typer's message."""
    from services.cli.entry import app

    if not args:
        return "no command given"
    group = typer.main.get_command(app)
    root = group.context_class(group, info_name="mlgate")
    name, *rest = args
    command = group.get_command(root, name)  # type: ignore[attr-defined]  # a typer group
    if command is None:
        return f"no such command: {name!r}"
    try:
        with command.make_context(name, list(rest), parent=root):
            pass
    except typer.TyperException as exc:
        formatted = getattr(exc, "format_message", None)
        return str(formatted()) if callable(formatted) else str(exc)
    return None


# --- compose interpolation ------------------------------------------------------------

# $$ (a literal $), ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error},
# ${NAME?error}, ${NAME:+alt}, ${NAME+alt}, $NAME: compose's forms.
_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))"
)


class InterpolationError(ValueError):
    """A required variable (`${NAME:?message}`) is unset or empty."""


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a compose .env file; comments and blank lines skipped."""
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = stripped.partition("=")
        if not sep:
            raise ValueError(f"{path.name}: not KEY=VALUE: {line!r}")
        env[key.strip()] = value.strip()
    return env


def variables(value: Any) -> dict[str, str | None]:
    """Each variable a loaded compose document uses in its values -> its operator
    (`:-`, `:?`, ...) or None. Comments are not values, so they never count."""
    found: dict[str, str | None] = {}
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        for item in value:
            for name, op in variables(item).items():
                found.setdefault(name, op)
    elif isinstance(value, str):
        for match in _VARIABLE.finditer(value):
            name = match["braced"] or match["plain"]
            if name:
                found.setdefault(name, match["op"])
    return found


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """`value` (a loaded compose document) with every string interpolated from `env`."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if isinstance(value, str):
        return _VARIABLE.sub(lambda match: _substitute(match, env), value)
    return value


def _substitute(match: re.Match[str], env: Mapping[str, str]) -> str:
    if match["escaped"]:
        return "$"
    name = match["braced"] or match["plain"]
    op, arg = match["op"], match["arg"] or ""
    current = env.get(name)
    empty = not current
    if op in (":-", "-"):
        unset = empty if op == ":-" else current is None
        return arg if unset else str(current)
    if op in (":?", "?"):
        unset = empty if op == ":?" else current is None
        if unset:
            raise InterpolationError(f"{name}: {arg or 'required'}")
        return str(current)
    if op in (":+", "+"):
        present = not empty if op == ":+" else current is not None
        return arg if present else ""
    return current or ""
