"""Optional features and the ``pip install`` extra each needs.

The base install codes files (retrieval and the classifier) and trains the classifier. The rest
is in extras declared in ``pyproject.toml``; a feature calls :func:`require` before importing
what it needs, so a missing extra ends in one line naming the command to run (the CLI prints it
as ``error: ...`` and exits 2) instead of a traceback from deep inside a library.
"""

from __future__ import annotations

import importlib.util

#: extra -> what it adds (for the message); keep in step with pyproject.toml.
EXTRAS: dict[str, str] = {
    "review": "the review loop (Label Studio)",
    "skills": "the skills graph and matcher",
    "paraphrase": "the paraphraser (LoRA fine-tuning of Gemma 3 270M)",
    "llm": "the local LLM server's model (Gemma 3 270M GGUF)",
    "ray": "coding on Ray (--engine ray)",
    "onnx": "the ONNX embedder backend",
    "serve": "the HTTP service (autocoder serve)",
}


class MissingExtra(ImportError):
    """A feature's optional dependencies are not installed."""


def missing(*modules: str) -> list[str]:
    """The top-level ``modules`` that cannot be imported (without importing them)."""
    gone = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            gone.append(name)
    return gone


def require(extra: str, *modules: str) -> None:
    """Raise :class:`MissingExtra` naming ``pip install 'autocoder[extra]'`` when one of
    ``modules`` is not installed."""
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}; known: {', '.join(EXTRAS)}")
    gone = missing(*modules)
    if gone:
        raise MissingExtra(
            f"{EXTRAS[extra]} needs {', '.join(gone)}, which is not installed: "
            f"run pip install 'autocoder[{extra}]'"
        )
