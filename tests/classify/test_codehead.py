from __future__ import annotations

import numpy as np
import pytest

from autocoder.classify.codehead import HEAD_FILE, CodeHead, load_code_head, save_code_head


def _head(seed: int = 0) -> CodeHead:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(3, 5)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return CodeHead(["2512.1", "0110", "9999"], vectors, 20.0)


def test_round_trip_keeps_codes_rows_and_scale(tmp_path) -> None:
    head = _head()
    path = save_code_head(tmp_path, head)
    assert path.name == HEAD_FILE
    back = load_code_head(tmp_path)
    # numeric-looking codes stay strings, in order
    assert list(back.codes) == ["2512.1", "0110", "9999"]
    np.testing.assert_array_equal(back.vectors, head.vectors)
    assert back.scale == 20.0


def test_the_same_head_gives_the_same_bytes(tmp_path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = save_code_head(tmp_path / "a", _head()).read_bytes()
    for _ in range(20):  # safetensors orders several metadata keys differently run to run
        assert save_code_head(tmp_path / "b", _head()).read_bytes() == a
    assert a != save_code_head(tmp_path / "a", _head(seed=1)).read_bytes()


def test_logits_are_scaled_cosines() -> None:
    head = _head()
    emb = np.array([head.vectors[1] * 7.0, head.vectors[2] * 0.5])
    logits = head.logits(emb)
    assert logits.shape == (2, 3)
    assert logits[0, 1] == pytest.approx(20.0, abs=1e-4)
    assert logits[1, 2] == pytest.approx(20.0, abs=1e-4)
    assert list(logits.argmax(axis=1)) == [1, 2]


def test_rows_for_orders_classes_and_reports_missing() -> None:
    head = _head()
    rows, missing = head.rows_for(["9999", "new", "2512.1"])
    assert missing == ["new"]
    np.testing.assert_allclose(rows[0], 20.0 * head.vectors[2])
    np.testing.assert_array_equal(rows[1], np.zeros(5))
    np.testing.assert_allclose(rows[2], 20.0 * head.vectors[0])


def test_save_rejects_rows_codes_mismatch(tmp_path) -> None:
    head = _head()
    with pytest.raises(ValueError, match="3 head rows for 2 codes"):
        save_code_head(tmp_path, CodeHead(["a", "b"], head.vectors, 1.0))


def test_missing_head_file_names_the_directory(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="has no code_head.safetensors"):
        load_code_head(tmp_path)
