"""The training loop for the classifier head: mini-batches, validation, early stopping.

The loss is any module called as ``loss(logits, targets)``. After each validation pass the loop
calls ``loss.on_validation(y_true, y_pred)`` when the loss defines it (the CDB loss re-estimates
its class difficulties there); nothing here depends on which loss it is.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from autocoder.classify.losses import per_class_accuracy

log = logging.getLogger(__name__)

Monitor = Literal["accuracy", "macro_accuracy", "nll"]


class MLP(nn.Module):
    """Embedding -> [Linear -> GELU -> Dropout] x layers -> Linear(num_classes).

    ``hidden = 0`` gives a linear (multinomial logistic regression) head.
    """

    def __init__(
        self,
        input_dim: int,
        num_classes: int,
        *,
        hidden: int = 512,
        layers: int = 1,
        dropout: float = 0.1,
        input_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        blocks: list[nn.Module] = [nn.Dropout(input_dropout)] if input_dropout > 0 else []
        width = input_dim
        if hidden > 0:
            for _ in range(layers):
                blocks += [nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout)]
                width = hidden
        blocks.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@dataclass
class TrainHistory:
    epochs: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    seconds: float = 0.0
    stopped_early: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "epochs": self.epochs,
            "best_epoch": self.best_epoch,
            "seconds": round(self.seconds, 3),
            "stopped_early": self.stopped_early,
        }


def predict_logits(net: nn.Module, X: np.ndarray, *, batch_size: int = 4096) -> np.ndarray:
    net.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(X), batch_size):
            xb = torch.as_tensor(np.asarray(X[start : start + batch_size], dtype=np.float32))
            out.append(net(xb).numpy())
    if not out:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(out).astype(np.float32)


def credited_predictions(
    logits: np.ndarray, y: np.ndarray, acceptable: np.ndarray | None
) -> np.ndarray:
    """Top-1 predictions, with an acceptable prediction credited as the row's label ``y``."""
    pred = logits.argmax(axis=1)
    if acceptable is None:
        return pred
    ok = np.asarray(acceptable, dtype=bool)[np.arange(len(pred)), pred]
    return np.where(ok, y, pred)


def validation_metrics(
    logits: np.ndarray, y: np.ndarray, num_classes: int, acceptable: np.ndarray | None = None
) -> dict[str, float]:
    """Accuracy, macro accuracy and NLL; ``acceptable`` (bool ``(n, C)``) credits any right code."""
    pred = credited_predictions(logits, y, acceptable)
    z = logits - logits.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    if acceptable is not None:
        mask = np.asarray(acceptable, dtype=bool).copy()
        mask[np.arange(len(y)), y] = True
        m = np.where(mask, log_p, -np.inf).max(axis=1, keepdims=True)
        row_ll = (m + np.log(np.where(mask, np.exp(log_p - m), 0.0).sum(axis=1, keepdims=True)))[
            :, 0
        ]
    else:
        row_ll = log_p[np.arange(len(y)), y]
    acc, _ = per_class_accuracy(y, pred, num_classes)
    return {
        "accuracy": float((pred == y).mean()),
        "macro_accuracy": float(np.nanmean(acc)),
        "nll": float(-row_ll.mean()),
    }


def train_network(
    net: nn.Module,
    loss_fn: nn.Module,
    X: np.ndarray,
    y: np.ndarray,
    X_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    *,
    num_classes: int,
    epochs: int = 40,
    batch_size: int = 256,
    lr: float = 2e-3,
    weight_decay: float = 1e-4,
    patience: int = 4,
    monitor: Monitor = "accuracy",
    seed: int = 0,
    val_acceptable: np.ndarray | None = None,
) -> TrainHistory:
    """Train ``net`` in place; with validation data, keep the best epoch by ``monitor``.

    ``val_acceptable`` (bool ``(n_val, C)``) marks every right code of a validation row; the
    metrics and the loss's ``on_validation`` hook then credit any of them.
    """
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
    if len(X) == 0:
        raise ValueError("no training rows")
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    X_t = torch.as_tensor(np.asarray(X, dtype=np.float32))
    y_t = torch.as_tensor(np.asarray(y, dtype=np.int64))
    has_val = X_val is not None and y_val is not None and len(y_val) > 0
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs))
    hook = getattr(loss_fn, "on_validation", None)
    history = TrainHistory()
    best_score = -np.inf
    best_state: dict[str, Any] | None = None
    bad = 0
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        net.train()
        perm = torch.randperm(len(X_t), generator=gen)
        total = 0.0
        for s in range(0, len(perm), batch_size):
            idx = perm[s : s + batch_size]
            opt.zero_grad()
            loss = loss_fn(net(X_t[idx]), y_t[idx])
            loss.backward()
            opt.step()
            total += float(loss.item()) * len(idx)
        sched.step()
        row: dict[str, float] = {"epoch": epoch, "train_loss": total / len(perm)}
        if has_val:
            assert X_val is not None and y_val is not None
            logits = predict_logits(net, X_val)
            y_v = np.asarray(y_val)
            metrics = validation_metrics(logits, y_v, num_classes, val_acceptable)
            row.update({f"val_{k}": v for k, v in metrics.items()})
            if callable(hook):
                hook(y_v, credited_predictions(logits, y_v, val_acceptable))
            score = -metrics["nll"] if monitor == "nll" else metrics[monitor]
            if score > best_score + 1e-6:
                best_score, bad, history.best_epoch = score, 0, epoch
                best_state = copy.deepcopy(net.state_dict())
            else:
                bad += 1
        history.epochs.append(row)
        log.info("epoch %s: %s", epoch, {k: round(v, 4) for k, v in row.items()})
        if has_val and bad >= patience:
            history.stopped_early = True
            break
    if best_state is not None:
        net.load_state_dict(best_state)
    else:
        history.best_epoch = len(history.epochs)
    net.eval()
    history.seconds = time.perf_counter() - start
    return history
