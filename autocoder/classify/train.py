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
from scipy.special import log_softmax, logsumexp
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
    """Accuracy, macro accuracy and NLL; ``acceptable`` (bool ``(n, C)``) credits any right code
    (the likelihood of a row is then the probability mass on its right codes)."""
    pred = credited_predictions(logits, y, acceptable)
    log_p = log_softmax(logits, axis=1)
    if acceptable is not None:
        mask = np.asarray(acceptable, dtype=bool).copy()
        mask[np.arange(len(y)), y] = True
        row_ll = logsumexp(np.where(mask, log_p, -np.inf), axis=1)
    else:
        row_ll = log_p[np.arange(len(y)), y]
    acc, _ = per_class_accuracy(y, pred, num_classes)
    return {
        "accuracy": float((pred == y).mean()),
        "macro_accuracy": float(np.nanmean(acc)),
        "nll": float(-row_ll.mean()),
    }


def epoch_order(
    n: int, sample_weight: np.ndarray | None, generator: torch.Generator
) -> torch.Tensor:
    """Row order of one epoch. With ``sample_weight`` each row appears ``floor(w)`` times plus
    once more with probability ``w - floor(w)``, so a row's expected loss weight is ``w``
    (works with any loss, which only sees the mini-batch)."""
    if sample_weight is None:
        return torch.randperm(n, generator=generator)
    w = torch.as_tensor(np.asarray(sample_weight, dtype=np.float64))
    whole = torch.floor(w)
    repeats = whole + (torch.rand(n, generator=generator, dtype=torch.float64) < w - whole)
    rows = torch.repeat_interleave(torch.arange(n), repeats.to(torch.int64))
    if len(rows) == 0:
        return torch.randperm(n, generator=generator)
    return rows[torch.randperm(len(rows), generator=generator)]


class EarlyStopping:
    """Keeps the weights of the best epoch by ``monitor``; says stop after ``patience`` epochs
    without improvement."""

    def __init__(self, monitor: Monitor, patience: int) -> None:
        self.monitor = monitor
        self.patience = patience
        self.best_score = -np.inf
        self.best_state: dict[str, Any] | None = None
        self.best_epoch = 0
        self.bad = 0

    def update(self, net: nn.Module, epoch: int, metrics: dict[str, float]) -> bool:
        """Record one validation pass; True when training should stop."""
        score = -metrics["nll"] if self.monitor == "nll" else metrics[self.monitor]
        if score > self.best_score + 1e-6:
            self.best_score, self.bad, self.best_epoch = score, 0, epoch
            self.best_state = copy.deepcopy(net.state_dict())
        else:
            self.bad += 1
        return self.bad >= self.patience

    def restore(self, net: nn.Module) -> bool:
        """Load the best weights into ``net``; False when there were none (no validation)."""
        if self.best_state is None:
            return False
        net.load_state_dict(self.best_state)
        return True


def run_epoch(
    net: nn.Module,
    loss_fn: nn.Module,
    opt: torch.optim.Optimizer,
    X: torch.Tensor,
    y: torch.Tensor,
    order: torch.Tensor,
    batch_size: int,
) -> float:
    """One pass over ``X[order]`` in mini-batches; returns the mean training loss."""
    net.train()
    total = 0.0
    for s in range(0, len(order), batch_size):
        idx = order[s : s + batch_size]
        opt.zero_grad()
        loss = loss_fn(net(X[idx]), y[idx])
        loss.backward()
        opt.step()
        total += float(loss.item()) * len(idx)
    return total / len(order)


def validate(
    net: nn.Module,
    loss_fn: nn.Module,
    X_val: np.ndarray,
    y_val: np.ndarray,
    num_classes: int,
    acceptable: np.ndarray | None,
) -> dict[str, float]:
    """Validation metrics; also feeds the loss's ``on_validation`` hook when it has one."""
    logits = predict_logits(net, X_val)
    metrics = validation_metrics(logits, y_val, num_classes, acceptable)
    hook = getattr(loss_fn, "on_validation", None)
    if callable(hook):
        hook(y_val, credited_predictions(logits, y_val, acceptable))
    return metrics


def _check_training_rows(X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None) -> None:
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
    if len(X) == 0:
        raise ValueError("no training rows")
    if sample_weight is not None and (
        len(sample_weight) != len(y) or not np.all(np.asarray(sample_weight) >= 0)
    ):
        raise ValueError(f"sample_weight needs {len(y)} non-negative values")


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
    sample_weight: np.ndarray | None = None,
    validate_start: bool = False,
) -> TrainHistory:
    """Train ``net`` in place (AdamW, cosine schedule); with validation data, keep the best
    epoch by ``monitor`` and stop after ``patience`` epochs without improvement.

    ``val_acceptable`` (bool ``(n_val, C)``) marks every right code of a validation row; the
    metrics and the loss's ``on_validation`` hook then credit any of them. ``sample_weight``
    (``>= 0`` per row) weighs rows through how often each epoch visits them (``epoch_order``).
    ``validate_start`` validates the network before training too (epoch 0), so a network that
    starts somewhere good (a fine-tuned head) is kept when training only makes it worse.
    """
    _check_training_rows(X, y, sample_weight)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    X_t = torch.as_tensor(np.asarray(X, dtype=np.float32))
    y_t = torch.as_tensor(np.asarray(y, dtype=np.int64))
    val = None if X_val is None or y_val is None or not len(y_val) else (X_val, np.asarray(y_val))
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs))
    stopper = EarlyStopping(monitor, patience)
    history = TrainHistory()
    start = time.perf_counter()
    if validate_start and val is not None:
        metrics = validate(net, loss_fn, *val, num_classes, val_acceptable)
        stopper.update(net, 0, metrics)
        history.epochs.append({"epoch": 0, **{f"val_{k}": v for k, v in metrics.items()}})
    for epoch in range(1, epochs + 1):
        order = epoch_order(len(X_t), sample_weight, gen)
        row: dict[str, float] = {
            "epoch": epoch,
            "train_loss": run_epoch(net, loss_fn, opt, X_t, y_t, order, batch_size),
        }
        sched.step()
        stop = False
        if val is not None:
            metrics = validate(net, loss_fn, *val, num_classes, val_acceptable)
            row.update({f"val_{k}": v for k, v in metrics.items()})
            stop = stopper.update(net, epoch, metrics)
        history.epochs.append(row)
        log.info("epoch %s: %s", epoch, {k: round(v, 4) for k, v in row.items()})
        if stop:
            history.stopped_early = True
            break
    history.best_epoch = stopper.best_epoch if stopper.restore(net) else len(history.epochs)
    net.eval()
    history.seconds = time.perf_counter() - start
    return history
