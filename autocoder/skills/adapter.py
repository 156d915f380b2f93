"""CPU-sized skill matcher: the sentence encoder stays frozen, a linear *query adapter* learns.

``q' = normalise(q + q W)`` for posting text (queries), skill labels keep their plain
embeddings. ``W`` (d × d, zero-initialised, so training starts at the plain encoder) is fitted
with the multiple-negatives ranking loss — scaled cosine softmax cross-entropy — where the
negatives are *all* skill labels of the catalogue, not just the batch. Encodings come from the
workspace embedding cache, so training costs one encoding pass plus seconds of matrix work.
Early stopping watches the loss on a validation share of the pairs.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from autocoder.embed import Embedder
from autocoder.skills.data import SkillCatalog

ADAPTER_FILE = "adapter.npy"


class AdaptedEmbedder:
    """An :class:`~autocoder.embed.Embedder` whose query vectors pass through the adapter."""

    def __init__(self, base: Any, weight: np.ndarray) -> None:
        self.base = base
        self.weight = np.asarray(weight, dtype=np.float32)

    @property
    def label_model_id(self) -> str:
        """Labels (not queries) get the base encoder's vectors: they share its label cache."""
        return str(getattr(self.base, "model_id", "base"))

    @property
    def model_id(self) -> str:
        digest = hashlib.sha1(self.weight.tobytes()).hexdigest()[:12]
        return f"{getattr(self.base, 'model_id', 'base')}|adapter={digest}"

    def encode(
        self, texts: Sequence[str], *, is_query: bool = False, show_progress: bool = False
    ) -> np.ndarray:
        vecs = np.asarray(self.base.encode(texts, show_progress=show_progress), dtype=np.float32)
        if not is_query or not len(texts):
            return vecs
        return adapt(vecs, self.weight)

    @classmethod
    def load(cls, path: str | Path, *, cache_dir: str | Path | None = None) -> AdaptedEmbedder:
        path = Path(path)
        meta = json.loads((path / "autocoder_skill_matcher.json").read_text())
        weight = np.load(path / ADAPTER_FILE)
        return cls(Embedder(meta["base_model"], cache_dir=cache_dir), weight)


def adapt(vecs: np.ndarray, weight: np.ndarray) -> np.ndarray:
    out = vecs + vecs @ weight
    return (out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)).astype(np.float32)


def _fit(
    q: Any, target: Any, labels: Any, cfg: Any, val: tuple[Any, Any] | None
) -> tuple[np.ndarray, list[dict[str, float]]]:
    import torch

    gen = torch.Generator().manual_seed(cfg.seed)
    weight = torch.zeros(q.shape[1], q.shape[1], requires_grad=True)
    opt = torch.optim.AdamW([weight], lr=cfg.adapter_lr, weight_decay=cfg.adapter_weight_decay)

    def loss_of(x: Any, y: Any) -> Any:
        z = torch.nn.functional.normalize(x + x @ weight, dim=1)
        return torch.nn.functional.cross_entropy(cfg.scale * z @ labels.T, y)

    history: list[dict[str, float]] = []
    best, best_w, wait = float("inf"), weight.detach().clone(), 0
    for epoch in range(cfg.adapter_epochs):
        order = torch.randperm(q.shape[0], generator=gen)
        total = 0.0
        for start in range(0, q.shape[0], cfg.adapter_batch_size):
            idx = order[start : start + cfg.adapter_batch_size]
            loss = loss_of(q[idx], target[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.item()) * len(idx)
        with torch.no_grad():
            val_loss = float(loss_of(*val).item()) if val is not None else total / q.shape[0]
        history.append({"epoch": epoch, "train": total / q.shape[0], "val": val_loss})
        if val_loss < best - 1e-4:
            best, best_w, wait = val_loss, weight.detach().clone(), 0
        else:
            wait += 1
            if wait >= cfg.patience:
                break
    return best_w.numpy(), history


def train_adapter(
    pairs: pd.DataFrame,
    catalog: SkillCatalog,
    cfg: Any,
    output_dir: str | Path,
    *,
    cache_dir: str | Path | None = None,
    show_progress: bool = False,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Fit the query adapter on ``pairs`` (anchor → preferred label) and save it."""
    import torch

    started = time.perf_counter()
    index = catalog.index_of_label()
    pairs = pairs[pairs["positive"].isin(index)].reset_index(drop=True)
    if len(pairs) < 2:
        raise ValueError("the skill matcher needs at least two training pairs")
    base = Embedder(cfg.base_model, cache_dir=cache_dir, batch_size=128)
    labels = torch.from_numpy(base.encode(list(catalog.labels), show_progress=show_progress))
    q = torch.from_numpy(base.encode(pairs["anchor"].tolist(), show_progress=show_progress))
    y = torch.tensor([index[p] for p in pairs["positive"]])
    rng = np.random.default_rng(cfg.seed)
    is_val = rng.random(len(pairs)) < cfg.val_fraction
    val = None
    if is_val.any() and (~is_val).sum() >= 2:
        val = (q[torch.from_numpy(is_val)], y[torch.from_numpy(is_val)])
        keep = torch.from_numpy(~is_val)
        q, y = q[keep], y[keep]
    torch.manual_seed(cfg.seed)
    weight, history = _fit(q, y, labels, cfg, val)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    np.save(output_dir / ADAPTER_FILE, weight)
    info = {
        "base_model": cfg.base_model,
        "pairs": len(pairs),
        "sources": {str(k): int(v) for k, v in pairs["source"].value_counts().items()},
        "epochs_run": len(history),
        "history": history,
        "seconds": round(time.perf_counter() - started, 1),
        **(meta or {}),
    }
    (output_dir / "autocoder_skill_matcher.json").write_text(json.dumps(info, indent=2))
    return output_dir
