"""Versioned prompt templates: ``prompts/<name>.<version>.toml``, loaded by ``load_prompt``.

A template file declares its placeholders and has a ``system`` and a ``user`` part::

    name = "rag_pick"
    version = "v1"
    placeholders = ["record", "candidates"]
    system = "..."
    user = "... {{record}} ... {{candidates}} ..."

Placeholders are written ``{{name}}`` so the JSON examples inside prompts need no escaping.
Loading fails on a missing file, a missing part, or a placeholder used but not declared (or
declared but never used); rendering fails on a missing or an unknown value. Nothing is silently
left unfilled.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from autocoder.resources import resource_dir

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_PARTS = ("system", "user")


class PromptError(ValueError):
    """A prompt template is missing, malformed, or rendered with wrong values."""


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    version: str
    system: str
    user: str
    placeholders: tuple[str, ...]
    path: Path
    sha256: str

    @property
    def id(self) -> str:
        """``name.version``, e.g. ``rag_pick.v1``: recorded as provenance and in cache keys."""
        return f"{self.name}.{self.version}"

    def render(self, **values: object) -> list[dict[str, str]]:
        """Fill every placeholder; returns chat ``messages`` (system + user)."""
        declared = set(self.placeholders)
        missing = sorted(declared - set(values))
        unknown = sorted(set(values) - declared)
        if missing or unknown:
            raise PromptError(
                f"prompt {self.id} ({self.path}): "
                + (f"missing values for {missing}" if missing else "")
                + ("; " if missing and unknown else "")
                + (
                    f"unknown placeholders {unknown} (declared: {sorted(declared)})"
                    if unknown
                    else ""
                )
            )
        texts = {k: str(v) for k, v in values.items()}

        def fill(part: str) -> str:
            return PLACEHOLDER.sub(lambda m: texts[m.group(1)], part)

        messages = []
        if self.system.strip():
            messages.append({"role": "system", "content": fill(self.system)})
        messages.append({"role": "user", "content": fill(self.user)})
        return messages


def load_prompt(name: str, version: str, *, override: str | Path | None = None) -> PromptTemplate:
    """Load ``<prompts dir>/<name>.<version>.toml``; ``override`` is the configured prompts dir."""
    if not _NAME.match(name) or not _NAME.match(version):
        raise PromptError(f"invalid prompt name/version {name!r}/{version!r}")
    directory = resource_dir("prompts", override)
    path = directory / f"{name}.{version}.toml"
    if not path.is_file():
        available = sorted(p.name for p in directory.glob("*.toml"))
        raise PromptError(f"prompt file {path} not found; available: {available}")
    raw = path.read_bytes()
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PromptError(f"prompt file {path} is not valid TOML: {exc}") from exc
    for key in ("name", "version"):
        if data.get(key) != {"name": name, "version": version}[key]:
            raise PromptError(
                f"prompt file {path}: {key} = {data.get(key)!r} does not match the file name"
            )
    if "user" not in data or not isinstance(data["user"], str) or not data["user"].strip():
        raise PromptError(f"prompt file {path}: needs a non-empty 'user' part")
    system = data.get("system", "")
    if not isinstance(system, str):
        raise PromptError(f"prompt file {path}: 'system' must be a string")
    declared = data.get("placeholders")
    if not isinstance(declared, list) or not all(isinstance(p, str) for p in declared):
        raise PromptError(f"prompt file {path}: needs 'placeholders', a list of names")
    used = {m.group(1) for part in (system, data["user"]) for m in PLACEHOLDER.finditer(part)}
    undeclared = sorted(used - set(declared))
    unused = sorted(set(declared) - used)
    if undeclared:
        raise PromptError(
            f"prompt file {path}: placeholders {undeclared} are used but not declared"
        )
    if unused:
        raise PromptError(f"prompt file {path}: placeholders {unused} are declared but never used")
    extra = sorted(set(data) - {"name", "version", "description", "placeholders", *_PARTS})
    if extra:
        raise PromptError(f"prompt file {path}: unknown keys {extra}")
    return PromptTemplate(
        name=name,
        version=version,
        system=system,
        user=data["user"],
        placeholders=tuple(declared),
        path=path,
        sha256=hashlib.sha256(raw).hexdigest(),
    )
