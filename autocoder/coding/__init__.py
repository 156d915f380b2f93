"""Coding records: the loaded coder, its predictors and the engines that run it.

* ``loaded``: ``load_coder(settings, ws, *, model=None, taxonomy_name=None) -> LoadedCoder``,
  the one factory; model resolution (``pretrained``), fingerprints, the retrieval coder.
* ``predictor``: the ``Predictor`` protocol and the declared ``Capabilities``.
* ``retrieval``: ``RetrievalCoder``, nearest code texts in the index.
* ``mixture``: classifier + retrieval (``CombinedPredictor``) and its fitting.
* ``batch``: ``code_file`` (checkpointed, resumable) and ``code_frame`` (an in-memory table);
  job keys.
* ``engine_ray``: the same batch coder over Ray Data replicas.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from autocoder.coding.batch import CodingSummary, code_file, code_frame
    from autocoder.coding.loaded import (
        PRETRAINED,
        CoderSource,
        LoadedCoder,
        load_coder,
        pretrained_dir,
        resolve_model_dir,
        retrieval_coder,
    )
    from autocoder.coding.predictor import Capabilities, Predictor, capabilities_of

#: Public name -> the module defining it (imported on first use, so that importing one
#: submodule, e.g. ``coding.predictor`` from ``classify.model``, loads no other).
_HOMES = {
    "CodingSummary": "batch",
    "code_file": "batch",
    "code_frame": "batch",
    "PRETRAINED": "loaded",
    "CoderSource": "loaded",
    "LoadedCoder": "loaded",
    "load_coder": "loaded",
    "pretrained_dir": "loaded",
    "resolve_model_dir": "loaded",
    "retrieval_coder": "loaded",
    "Capabilities": "predictor",
    "Predictor": "predictor",
    "capabilities_of": "predictor",
}

__all__ = [
    "PRETRAINED",
    "Capabilities",
    "CoderSource",
    "CodingSummary",
    "LoadedCoder",
    "Predictor",
    "capabilities_of",
    "code_file",
    "code_frame",
    "load_coder",
    "pretrained_dir",
    "resolve_model_dir",
    "retrieval_coder",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'autocoder.coding' has no attribute {name!r}")
    return getattr(importlib.import_module(f"autocoder.coding.{_HOMES[name]}"), name)
