"""The code head a ``finetune.objective = "codes"`` embedder is saved with.

Fine-tuning the embedder as a classifier over the codes trains a cosine-softmax head (one unit
row per code, logits = scale x cosine); ``code_head.safetensors`` beside the embedder keeps it, so a
linear classifier on that embedder can start from it (``EmbeddingClassifier(head_init=
"embedder")``) instead of from random weights.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

#: The file beside the embedder (its sorted codes, head rows and scale).
HEAD_FILE = "code_head.safetensors"  # safetensors: the same head gives the same bytes


@dataclass(frozen=True)
class CodeHead:
    """The codes objective's head: ``vectors[i]`` (unit length) is code ``codes[i]``'s row;
    logits are ``scale`` x the cosine of a normalised embedding and each row."""

    codes: Sequence[str]
    vectors: np.ndarray
    scale: float

    def logits(self, embeddings: np.ndarray) -> np.ndarray:
        emb = np.asarray(embeddings, dtype=np.float32)
        emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-9)
        return np.asarray(self.scale * emb @ self.vectors.T, dtype=np.float32)

    def rows_for(self, classes: Sequence[str]) -> tuple[np.ndarray, list[str]]:
        """``scale`` x the head rows in ``classes``' order (a zero row, logit 0, for a class the
        head lacks) and the classes it lacks."""
        pos = {str(c): i for i, c in enumerate(self.codes)}
        rows = np.zeros((len(classes), self.vectors.shape[1]), np.float32)
        missing = []
        for j, c in enumerate(classes):
            i = pos.get(str(c))
            if i is None:
                missing.append(str(c))
            else:
                rows[j] = self.scale * self.vectors[i]
        return rows, missing


def save_code_head(directory: str | Path, head: CodeHead) -> Path:
    path = Path(directory) / HEAD_FILE
    vectors = np.ascontiguousarray(head.vectors, dtype=np.float32)
    if vectors.shape[0] != len(head.codes):
        raise ValueError(f"{vectors.shape[0]} head rows for {len(head.codes)} codes")
    # one metadata key: safetensors writes several in no fixed order
    meta = {"head": json.dumps({"codes": [str(c) for c in head.codes],
                                "scale": float(head.scale)}, sort_keys=True)}  # fmt: skip
    save_file({"vectors": vectors}, str(path), metadata=meta)
    return path


def load_code_head(directory: str | Path) -> CodeHead:
    """The head saved beside a codes-objective embedder; a clear error when there is none."""
    path = Path(directory) / HEAD_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{directory} has no {HEAD_FILE}: only an embedder fine-tuned with "
            "finetune.objective = 'codes' carries a code head"
        )
    with safe_open(str(path), framework="numpy") as f:
        meta = json.loads((f.metadata() or {})["head"])
    return CodeHead(meta["codes"], load_file(str(path))["vectors"], float(meta["scale"]))
