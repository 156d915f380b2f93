"""Small numeric helpers shared by the retrieval coder and the classifier's calibration."""

from __future__ import annotations

import numpy as np


def softmax(x: np.ndarray, temperature: float = 1.0, axis: int = -1) -> np.ndarray:
    """Numerically stable ``softmax(x / temperature)`` along ``axis`` (float64).

    Works on any shape, including empty arrays (returned unchanged as float64).
    """
    if temperature <= 0:
        raise ValueError(f"softmax temperature must be > 0, got {temperature}")
    z = np.asarray(x, dtype=np.float64) / temperature
    if z.size == 0:
        return z
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)
