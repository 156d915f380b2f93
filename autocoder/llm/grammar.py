"""JSON schema (the small subset our tasks use) -> llama.cpp GBNF grammar.

llama.cpp servers accept a ``grammar`` field that forces the answer to match it exactly, which
keeps even a tiny model's output parseable. Supported: ``object`` (properties emitted in the
declared order, all of them), ``array`` (``items``, ``minItems``, ``maxItems``), ``string``
(``enum``, ``maxLength``), ``number``/``integer`` (``minimum: 0, maximum: 1`` gets a compact
0..1 rule), ``boolean``. Anything else raises ``ValueError``.
"""

from __future__ import annotations

import json
import re
from typing import Any

_BASE_RULES = {
    "ws": "[ \\t\\n]{0,4}",
    "char": '[^"\\\\\\x00-\\x1f] | "\\\\" ["\\\\/bfnrt]',
    "number": '"-"? [0-9]{1,10} ("." [0-9]{1,6})?',
    "integer": '"-"? [0-9]{1,10}',
    "unit": '"0" ("." [0-9]{1,3})? | "1" (".0")?',
    "boolean": '"true" | "false"',
}


def _literal(text: str) -> str:
    """A GBNF string literal matching the JSON encoding of ``text``."""
    encoded = json.dumps(text, ensure_ascii=False)
    return '"' + encoded.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _Builder:
    def __init__(self) -> None:
        self.rules: dict[str, str] = {}
        self.used: set[str] = {"ws"}

    def add(self, hint: str, body: str) -> str:
        name = re.sub(r"[^a-z0-9-]", "-", hint.lower()).strip("-") or "r"
        base, i = name, 1
        while name in self.rules or name in _BASE_RULES or name == "root":
            i += 1
            name = f"{base}-{i}"
        self.rules[name] = body
        return name

    def visit(self, schema: dict[str, Any], hint: str) -> str:
        kind = schema.get("type")
        if "enum" in schema:
            values = schema["enum"]
            if not values or not all(isinstance(v, str) for v in values):
                raise ValueError(f"{hint}: only non-empty string enums are supported")
            return self.add(hint, " | ".join(_literal(v) for v in values))
        if kind == "object":
            props: dict[str, Any] = schema.get("properties", {})
            if not props:
                raise ValueError(f"{hint}: objects need properties")
            parts = []
            for i, (key, sub) in enumerate(props.items()):
                sep = '"," ws ' if i else ""
                parts.append(
                    f'{sep}{_literal(key)} ws ":" ws {self.visit(sub, f"{hint}-{key}")} ws'
                )
            return self.add(hint, '"{" ws ' + " ".join(parts) + ' "}"')
        if kind == "array":
            item = self.visit(schema.get("items", {"type": "string"}), f"{hint}-item")
            lo = int(schema.get("minItems", 0))
            hi = schema.get("maxItems")
            if hi is not None and int(hi) < lo:
                raise ValueError(f"{hint}: maxItems < minItems")
            tail = f'("," ws {item} ws)'
            if hi is None:
                more = f"{tail}{{{max(lo - 1, 0)},}}"
            else:
                more = f"{tail}{{{max(lo - 1, 0)},{max(int(hi) - 1, 0)}}}"
            body = f'"[" ws {item} ws {more} "]"'
            if lo == 0:
                body = f'"[" ws "]" | {body}'
            if hi is not None and int(hi) == 0:
                body = '"[" ws "]"'
            return self.add(hint, body)
        if kind == "string":
            self.used.add("char")
            hi = schema.get("maxLength")
            lo = int(schema.get("minLength", 0))
            reps = f"{{{lo},{int(hi)}}}" if hi is not None else f"{{{lo},}}"
            return self.add(hint, f'"\\"" char{reps} "\\""')
        if kind in ("number", "integer"):
            if schema.get("minimum") == 0 and schema.get("maximum") == 1:
                self.used.add("unit")
                return "unit"
            self.used.add(kind)
            return kind
        if kind == "boolean":
            self.used.add("boolean")
            return "boolean"
        raise ValueError(f"{hint}: unsupported schema {schema!r}")


def schema_to_gbnf(schema: dict[str, Any]) -> str:
    """A GBNF grammar whose root matches exactly the JSON documents described by ``schema``."""
    builder = _Builder()
    top = builder.visit(schema, "answer")
    lines = [f"root ::= ws {top} ws"]
    lines += [f"{name} ::= {body}" for name, body in builder.rules.items()]
    lines += [f"{name} ::= {_BASE_RULES[name]}" for name in sorted(builder.used)]
    return "\n".join(lines) + "\n"
