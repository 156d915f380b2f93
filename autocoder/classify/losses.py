"""Classification losses as ``nn.Module`` objects, built by name from a recipe.

Every loss is called as ``loss(logits, targets)`` with integer class targets. A loss may also
define ``on_validation(y_true, y_pred)``; the trainer calls it after each validation pass, so a
loss that adapts during training (CDB) gets its held-out feedback through one generic hook and
the trainer never branches on the loss type.

CDB (class-wise difficulty-balanced) loss, Sinha, Ohashi & Nakamura (ACCV 2020): the difficulty
of class ``c`` is ``d_c = 1 - accuracy_c`` measured on held-out data; its weight is
``w_c = d_c ** tau``. Weights are renormalised to mean 1 over the classes, so the loss keeps the
scale of plain cross-entropy. Difficulties start equal (all weights 1) and are re-estimated from
every validation pass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class CrossEntropyLoss(nn.Module):
    """Plain (optionally label-smoothed) cross-entropy."""

    def __init__(self, num_classes: int, *, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, targets, label_smoothing=self.label_smoothing)


class FocalLoss(nn.Module):
    """Focal loss (Lin et al. 2017): ``-(1 - p_t)^gamma * log p_t``, mean over the batch."""

    def __init__(self, num_classes: int, *, gamma: float = 2.0) -> None:
        super().__init__()
        if gamma < 0:
            raise ValueError(f"focal loss gamma must be >= 0, got {gamma}")
        self.num_classes = num_classes
        self.gamma = gamma

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits, dim=1).gather(1, targets[:, None]).squeeze(1)
        p = log_p.exp()
        return (-((1.0 - p) ** self.gamma) * log_p).mean()


def per_class_accuracy(
    y_true: np.ndarray, y_pred: np.ndarray, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-class top-1 accuracy and support; classes without examples get accuracy NaN."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    support = np.bincount(y_true, minlength=num_classes).astype(np.float64)
    hits = np.bincount(y_true[y_true == y_pred], minlength=num_classes).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.where(support > 0, hits / np.maximum(support, 1), np.nan)
    return acc, support


class CDBLoss(nn.Module):
    """Class-wise difficulty-balanced cross-entropy.

    ``tau`` sharpens (> 1) or flattens (< 1) the weighting; ``min_difficulty`` keeps classes that
    are perfectly classified on validation in play; ``momentum`` smooths difficulty estimates
    across validation passes (0 = use the latest pass only). Classes absent from a validation
    pass keep their previous difficulty.
    """

    weights: torch.Tensor
    difficulty: torch.Tensor

    def __init__(
        self,
        num_classes: int,
        *,
        tau: float = 1.0,
        min_difficulty: float = 0.05,
        momentum: float = 0.0,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        if tau < 0:
            raise ValueError(f"CDB tau must be >= 0, got {tau}")
        if not 0 <= momentum < 1:
            raise ValueError(f"CDB momentum must be in [0, 1), got {momentum}")
        self.num_classes = num_classes
        self.tau = tau
        self.min_difficulty = min_difficulty
        self.momentum = momentum
        self.label_smoothing = label_smoothing
        self.register_buffer("difficulty", torch.ones(num_classes))
        self.register_buffer("weights", torch.ones(num_classes))

    def update_difficulty(self, per_class_accuracy: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Set difficulties from per-class accuracies (NaN = unseen, keep old); return weights."""
        acc = torch.as_tensor(np.asarray(per_class_accuracy, dtype=np.float32))
        if acc.shape != (self.num_classes,):
            raise ValueError(
                f"per_class_accuracy has shape {tuple(acc.shape)}, expected ({self.num_classes},)"
            )
        seen = ~torch.isnan(acc)
        new = (1.0 - acc.nan_to_num(0.0)).clamp(min=self.min_difficulty, max=1.0)
        blended = self.momentum * self.difficulty + (1.0 - self.momentum) * new
        self.difficulty = torch.where(seen, blended, self.difficulty)
        raw = self.difficulty**self.tau
        self.weights = raw * (self.num_classes / raw.sum())
        return self.weights

    def on_validation(self, y_true: np.ndarray, y_pred: np.ndarray) -> None:
        acc, _ = per_class_accuracy(y_true, y_pred, self.num_classes)
        self.update_difficulty(acc)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        per_row = F.cross_entropy(
            logits, targets, reduction="none", label_smoothing=self.label_smoothing
        )
        w = self.weights.to(logits.device)[targets]
        return (w * per_row).sum() / w.sum().clamp(min=1e-12)


LossFactory = Callable[..., nn.Module]

LOSSES: dict[str, LossFactory] = {
    "cross_entropy": CrossEntropyLoss,
    "focal": FocalLoss,
    "cdb": CDBLoss,
}


def make_loss(name: str, num_classes: int, params: dict[str, Any] | None = None) -> nn.Module:
    """Build a registered loss by name (``cross_entropy``, ``focal``, ``cdb``)."""
    try:
        factory = LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)}") from None
    try:
        return factory(num_classes, **(params or {}))
    except TypeError as exc:
        raise ValueError(f"bad parameters for loss {name!r}: {exc}") from exc
