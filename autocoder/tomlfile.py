"""Reading TOML files (config, training recipes) with errors that name the file and the problem.

``read_toml`` parses one file, ``deep_merge`` lays one parsed file over another (a user config
over the defaults, a recipe over its ``base``), ``apply_overrides`` sets dotted keys in the
parsed dict, and ``load_toml_model`` reads, overrides and validates the result with a pydantic
model; every failure is raised as the caller's own error class (``RecipeError``, ``ConfigError``,
...). ``dump_toml`` writes a settings-shaped dict (scalars and lists, one table per section)
back as TOML.
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

__all__ = ["apply_overrides", "deep_merge", "dump_toml", "load_toml_model", "read_toml"]

M = TypeVar("M", bound=BaseModel)


def read_toml(
    path: str | Path, *, error: type[Exception] = ValueError, what: str = "recipe"
) -> dict[str, Any]:
    """The parsed TOML at ``path``; a missing or malformed file raises ``error`` naming it."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise error(f"{what} not found: {path}") from exc
    except IsADirectoryError as exc:
        raise error(f"{what} {path} is a directory; give a TOML file") from exc
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise error(f"{what} {path} is not a text file (not valid UTF-8 TOML)") from exc
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{what} {path} is not valid TOML: {exc}") from exc


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``update`` laid over it: tables are merged key by key (recursively), any
    other value of ``update`` (a scalar, a list) replaces the base's. Neither input is changed."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def apply_overrides(raw: dict[str, Any], overrides: dict[str, Any] | None) -> dict[str, Any]:
    """Set each ``{"section.key": value}`` of ``overrides`` in ``raw`` (in place; returned)."""
    for dotted, value in (overrides or {}).items():
        node = raw
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return raw


def load_toml_model(
    path: str | Path,
    model: type[M],
    *,
    error: type[Exception] = ValueError,
    what: str = "recipe",
    overrides: dict[str, Any] | None = None,
    raw: dict[str, Any] | None = None,
) -> M:
    """``model`` validated from the TOML at ``path`` (or from ``raw``, what was already read
    from it) with ``overrides`` applied."""
    if raw is None:
        raw = read_toml(path, error=error, what=what)
    raw = apply_overrides(raw, overrides)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise error(f"invalid {what} {path}:\n{exc}") from exc


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return (
            "{ " + ", ".join(f"{json.dumps(str(k))} = {_value(v)}" for k, v in value.items()) + " }"
        )
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as TOML")


def dump_toml(data: Mapping[str, Any], *, header: str = "") -> str:
    """TOML text of ``data``: its scalars first, then a ``[table]`` per mapping (deeper
    mappings inline). None values are left out (TOML has no null); ``header`` becomes
    comment lines on top."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    tables = {k: v for k, v in data.items() if isinstance(v, Mapping)}
    lines += [f"{k} = {_value(v)}" for k, v in data.items() if k not in tables and v is not None]
    for name, table in tables.items():
        lines += ["", f"[{name}]"]
        lines += [f"{k} = {_value(v)}" for k, v in table.items() if v is not None]
    return "\n".join(lines) + "\n"
