from __future__ import annotations

import numpy as np
import pytest
import torch

from autocoder.classify.losses import (
    CDBLoss,
    CrossEntropyLoss,
    FocalLoss,
    make_loss,
    per_class_accuracy,
)
from autocoder.classify.train import MLP, train_network

from .conftest import blobs


def test_cdb_weights_follow_difficulty() -> None:
    loss = CDBLoss(3, tau=1.0, min_difficulty=0.0)
    w = loss.update_difficulty(np.array([0.9, 0.5, 0.1]))
    assert w[2] > w[1] > w[0]
    assert float(w.mean()) == pytest.approx(1.0)
    # tau sharpens the contrast
    sharp = CDBLoss(3, tau=2.0, min_difficulty=0.0).update_difficulty(np.array([0.9, 0.5, 0.1]))
    assert float(sharp[2] / sharp[0]) > float(w[2] / w[0])


def test_cdb_unseen_classes_keep_their_difficulty() -> None:
    loss = CDBLoss(3, min_difficulty=0.0)
    loss.update_difficulty(np.array([0.5, 0.5, 0.5]))
    loss.update_difficulty(np.array([1.0, np.nan, 0.0]))
    assert loss.difficulty.tolist() == pytest.approx([0.0, 0.5, 1.0])


def test_cdb_rejects_wrong_shape() -> None:
    with pytest.raises(ValueError, match="expected \\(3,\\)"):
        CDBLoss(3).update_difficulty(np.array([0.1, 0.2]))


def test_cdb_equal_weights_equals_cross_entropy() -> None:
    logits = torch.randn(8, 4)
    y = torch.randint(0, 4, (8,))
    assert float(CDBLoss(4)(logits, y)) == pytest.approx(float(CrossEntropyLoss(4)(logits, y)))


def test_focal_gamma_zero_is_cross_entropy() -> None:
    logits = torch.randn(8, 4)
    y = torch.randint(0, 4, (8,))
    assert float(FocalLoss(4, gamma=0.0)(logits, y)) == pytest.approx(
        float(CrossEntropyLoss(4)(logits, y)), rel=1e-5
    )


def test_make_loss_by_name() -> None:
    assert isinstance(make_loss("cdb", 5, {"tau": 2.0}), CDBLoss)
    with pytest.raises(ValueError, match="unknown loss"):
        make_loss("hinge", 5)
    with pytest.raises(ValueError, match="bad parameters"):
        make_loss("focal", 5, {"tau": 1.0})


def test_per_class_accuracy_nan_for_absent() -> None:
    acc, support = per_class_accuracy(np.array([0, 0, 1]), np.array([0, 1, 1]), 3)
    assert acc[:2].tolist() == [0.5, 1.0] and np.isnan(acc[2])
    assert support.tolist() == [2, 1, 0]


def test_cdb_moves_weight_to_hard_classes_during_training() -> None:
    """Class 2 overlaps class 1 heavily (hard); class 0 is far away (easy)."""
    rng = np.random.default_rng(0)
    X_easy = rng.normal(loc=(8, 0), scale=0.5, size=(200, 2))
    X_h1 = rng.normal(loc=(0, 0), scale=1.0, size=(200, 2))
    X_h2 = rng.normal(loc=(0.8, 0), scale=1.0, size=(60, 2))
    X = np.vstack([X_easy, X_h1, X_h2]).astype(np.float32)
    y = np.array([0] * 200 + [1] * 200 + [2] * 60)
    perm = rng.permutation(len(y))
    X, y = X[perm], y[perm]
    loss = CDBLoss(3, tau=1.0)
    net = MLP(2, 3, hidden=16, dropout=0.0)
    train_network(
        net,
        loss,
        X[:360],
        y[:360],
        X[360:],
        y[360:],
        num_classes=3,
        epochs=15,
        batch_size=64,
        patience=100,
        seed=0,
    )
    w = loss.weights.numpy()
    assert w[2] > w[0] and w[1] > w[0]
    assert w[2] > 1.0 > w[0]


def test_trainer_calls_generic_validation_hook() -> None:
    class Spy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.calls: list[int] = []

        def forward(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.cross_entropy(logits, y)

        def on_validation(self, y_true: np.ndarray, y_pred: np.ndarray) -> None:
            self.calls.append(len(y_true))

    X, y_str = blobs([30, 30], dim=4)
    y = (y_str == "c1").astype(int)
    spy = Spy()
    hist = train_network(
        MLP(4, 2, hidden=8),
        spy,
        X[::2],
        y[::2],
        X[1::2],
        y[1::2],
        num_classes=2,
        epochs=3,
        patience=10,
    )
    assert spy.calls == [30, 30, 30]
    assert len(hist.epochs) == 3
