"""``autocoder examples fit``: vote settings and blend temperature fitted on held-out examples."""

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autocoder.coding.examples import examples_tag, vote_config
from autocoder.coding.retrieval import RetrievalCoder
from autocoder.config import ExamplesConfig
from autocoder.examples.fit import (
    FIT_KEYS,
    VOTE_GRID,
    HeldOut,
    fit_blend_temperature,
    fit_examples,
    grid_search,
    held_out_rows,
    load_fit,
    save_fit,
    untrained_rows,
)
from autocoder.examples.index import MemoryExampleIndex, Neighbours
from autocoder.examples.ops import add_rows, frame_rows
from autocoder.examples.store import AddSpec, ExampleStore, key_digest
from autocoder.examples.vote import ExampleVoter, blend
from autocoder.index import MemoryIndex
from autocoder.metrics import expected_calibration_error
from tests.fakes import HashingEmbedder, tiny_taxonomy

NURSE, DEV, TRUCK = "29-1141.00", "15-1252.00", "53-3032.00"
#: Words the code texts do not hold: only the examples know these titles.
WORDS = {
    NURSE: ["ward", "sister", "matron", "clinic", "theatre", "midwifery", "icu", "night"],
    DEV: ["python", "backend", "frontend", "kotlin", "devops", "fullstack", "web", "senior"],
    TRUCK: ["lorry", "haulage", "tipper", "artic", "multidrop", "courier", "van", "night"],
}
SMALL_GRID = {
    "neighbours": (5, 20),
    "temperature": (0.05, 0.1),
    "min_similarity": (0.0, 0.5),
    "weight": (0.5, 0.85),
}
CONFIGURED = {"neighbours": 20, "temperature": 0.05, "min_similarity": 0.0, "exact_weight": 1.0,
              "weight": 0.85, "exact_trust": 0.95, "blend_temperature": 1.0}  # fmt: skip


def test_blend_temperature_acts_only_where_neighbours_vote() -> None:
    p_base = np.array([[0.6, 0.3, 0.1], [0.6, 0.3, 0.1], [0.6, 0.3, 0.1]])
    p_ex = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    exact = np.array([False, False, True])
    plain = blend(p_base, p_ex, exact, weight=0.5, exact_trust=0.95)
    flat = blend(p_base, p_ex, exact, weight=0.5, exact_trust=0.95, temperature=2.0)
    assert flat[1].tolist() == pytest.approx(p_base[1].tolist())  # no examples: the base
    assert flat[2].tolist() == pytest.approx(plain[2].tolist())  # exact title: the rule
    assert flat[0].sum() == pytest.approx(1.0) and flat[0].max() < plain[0].max()
    assert flat[0].argmax() == plain[0].argmax()  # a temperature never changes the ranking


def test_an_over_confident_blend_gets_a_temperature_above_one() -> None:
    rng = np.random.default_rng(0)
    n, c = 2000, 5
    logits = rng.normal(size=(n, c)) * 3
    p_true = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    gold = np.asarray([rng.choice(c, p=row) for row in p_true])
    sharp = p_true**3 / (p_true**3).sum(axis=1, keepdims=True)  # over-confident

    def tempered(t: float) -> np.ndarray:
        q = sharp ** (1 / t)
        return q / q.sum(axis=1, keepdims=True)

    none = np.full(n, -1)
    t = fit_blend_temperature(gold, floor_code=none, floor=np.zeros(n), tempered=tempered)
    assert 2.0 < t < 4.5  # the sharpening was a power of 3

    def ece(q: np.ndarray) -> float:
        return expected_calibration_error(q.max(axis=1), q.argmax(axis=1) == gold)

    assert ece(tempered(t)) < 0.5 * ece(sharp)


def _noisy_store(tmp_path: Path, n: int = 240, noise: float = 0.3) -> ExampleStore:
    """Titles of three codes from word pools; ``noise`` of the rows coded at random (people
    disagree), a quarter of the titles repeated (titles recur)."""
    rng = np.random.default_rng(1)
    codes = list(WORDS)
    rows = []
    for i in range(n):
        code = codes[i % 3]
        title = " ".join(rng.choice(WORDS[code], size=3, replace=False))
        if i % 4 == 3:
            title = rows[i - 3][0]
            code = rows[i - 3][1]
        coded = codes[int(rng.integers(3))] if rng.random() < noise else code
        rows.append((title, coded, f"ann{i % 5}"))
    store = ExampleStore(tmp_path / "ex")
    df = pd.DataFrame(rows, columns=["title", "code", "annotator"])
    add_rows(store, tiny_taxonomy(), frame_rows(df, AddSpec("code"), source="s", file="f.csv"))
    return store


def _retrieval() -> RetrievalCoder:
    tax, emb = tiny_taxonomy(), HashingEmbedder()
    index = MemoryIndex()
    index.build(tax, emb)
    return RetrievalCoder(index, emb, classes=tax.leaf_codes()).fit()


def test_fit_is_cross_fitted_and_calibrates_an_over_confident_blend(tmp_path: Path) -> None:
    store = _noisy_store(tmp_path)
    fit = fit_examples(store.table(), _retrieval(), HashingEmbedder(), configured=CONFIGURED,
                       share=0.4, grid=SMALL_GRID)  # fmt: skip
    s = fit["settings"]
    assert set(s) == {*SMALL_GRID, "blend_temperature"}
    assert all(s[k] in SMALL_GRID[k] for k in SMALL_GRID)
    figures = fit["figures"]
    table = store.table()
    assert fit["held_out"] == figures["configured"]["n"] >= round(0.4 * len(store))
    assert fit["held_out"] + fit["voting_examples"] == len(store)
    # whole titles are held out: a title coded twice is never voted for by its own rows
    assert fit["held_out_titles"] < fit["held_out"]
    held = held_out_rows(table, rows=2000, share=0.4, seed=0)
    kept = set(table["key"].drop(index=held))
    assert not kept & set(table["key"].iloc[held])
    # the configured blend trusts noisy examples at 0.95: over-confident; the fitted one is
    # calibrated on the other half of the held-out rows
    fitted, configured = figures["fitted (cross-fitted)"], figures["configured"]
    assert fitted["ece"] < configured["ece"]
    assert figures["base"]["top1"] < fitted["top1"]  # the examples help


def test_too_few_examples_fail_clearly(tmp_path: Path) -> None:
    table = _noisy_store(tmp_path, n=60).table()
    with pytest.raises(ValueError, match="too few examples to fit.*at least 50"):
        held_out_rows(table, rows=2000, share=0.2, seed=0)
    assert 50 <= len(held_out_rows(table, rows=50, share=0.9, seed=0)) < 54  # rows caps it


def test_a_model_trained_on_the_store_is_fitted_on_titles_it_never_saw(tmp_path: Path) -> None:
    store = _noisy_store(tmp_path)
    table = store.table()
    keys = sorted(set(table["key"]))
    unseen = {key_digest(k) for k in keys[: len(keys) // 2]}
    held = untrained_rows(table, unseen, rows=2000, seed=0)
    assert {key_digest(k) for k in table["key"].iloc[held]} == unseen  # all of them, only them
    assert len(untrained_rows(table, unseen, rows=60, seed=0)) < len(held)  # rows caps it
    fit = fit_examples(table, _retrieval(), HashingEmbedder(), configured=CONFIGURED,
                       untrained=unseen, grid=SMALL_GRID)  # fmt: skip
    assert fit["held_out"] == len(held) and fit["held_out_from"].startswith("titles the model")
    assert fit["held_out"] + fit["voting_examples"] == len(store)
    with pytest.raises(ValueError, match="only 0 stored examples have titles it never trained"):
        untrained_rows(table, set(), rows=2000, seed=0)


def test_coding_votes_with_the_fit_of_its_own_coder_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = _noisy_store(tmp_path, n=30)
    cfg = ExamplesConfig()
    assert vote_config(cfg, store, "retrieval:a") is cfg  # no fit yet
    fitted = {**CONFIGURED, "neighbours": 5, "blend_temperature": 1.7}
    path = save_fit(store, {"format_version": 1, "settings": fitted}, predictor_id="retrieval:a",
                    content_hash=store.content_hash())  # fmt: skip
    doc = load_fit(store, "retrieval:a")
    assert doc is not None and doc["store"] == store.content_hash()
    assert doc["settings"] == fitted
    assert "retrieval:a" not in path.read_text()  # the coder by digest, not by id or path
    used = vote_config(cfg, store, "retrieval:a")
    assert used.neighbours == 5 and used.blend_temperature == 1.7
    assert examples_tag(used, store) != examples_tag(cfg, store)  # a new job key
    with caplog.at_level(logging.WARNING):
        assert vote_config(cfg, store, "model:retrained") is cfg
    assert "no examples fit" in caplog.text and "for others" in caplog.text
    other = save_fit(store, {"format_version": 1, "settings": CONFIGURED},
                     predictor_id="model:retrained", content_hash="x")  # fmt: skip
    assert other != path and vote_config(cfg, store, "retrieval:a").neighbours == 5
    assert (
        vote_config(cfg.model_copy(update={"use_fit": False}), store, "retrieval:a").neighbours
        == 10
    )
    path.write_text('{"format_version": 99}')
    with pytest.raises(ValueError, match="format 99 unknown"):
        load_fit(store, "retrieval:a")
    other.write_text(path.read_text().replace("99", "1"))
    with pytest.raises(ValueError, match="names another coder"):
        load_fit(store, "model:retrained")


def test_the_grid_holds_the_review_defaults_and_leaves_the_exact_title_rule_alone() -> None:
    cfg = ExamplesConfig()
    assert cfg.min_similarity in VOTE_GRID["min_similarity"]
    assert cfg.neighbours in VOTE_GRID["neighbours"] and cfg.weight in VOTE_GRID["weight"]
    assert not {"exact_weight", "exact_trust"} & set(FIT_KEYS)  # a rule, never fitted


def test_a_fit_made_on_another_store_content_is_used_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = _noisy_store(tmp_path, n=30)
    fitted = {**CONFIGURED, "neighbours": 5}
    save_fit(store, {"format_version": 1, "settings": fitted}, predictor_id="retrieval:a",
             content_hash=store.content_hash())  # fmt: skip
    with caplog.at_level(logging.WARNING):
        assert vote_config(ExamplesConfig(), store, "retrieval:a").neighbours == 5
    assert "changed since" not in caplog.text  # the store it was fitted on: quiet
    more = pd.DataFrame({"title": ["ward matron"], "code": [NURSE]})
    add_rows(store, tiny_taxonomy(), frame_rows(more, AddSpec("code"), source="t", file="g.csv"))
    with caplog.at_level(logging.WARNING):
        assert vote_config(ExamplesConfig(), store, "retrieval:a").neighbours == 5
    assert f"fitted on {len(store) - 1} examples" in caplog.text
    assert f"holds {len(store)}" in caplog.text and "examples fit` again" in caplog.text


def test_the_grid_is_chosen_by_top1_plus_top5_not_by_top1_alone(tmp_path: Path) -> None:
    """The nearest example names the gold code 60 % of the time, another code otherwise; the
    base ranks the gold sixth. Only with three neighbours (the gold the second of them) is the
    gold in the top five where the nearest is wrong; on one row two close neighbours outvote a
    right nearest one, so three neighbours cost 0.01 top-1 for 0.4 top-5. Top-1 first (the old
    rule) would keep one neighbour."""
    store = _noisy_store(tmp_path, n=30)
    classes = [NURSE, DEV, TRUCK, *(f"x{j}" for j in range(6))]
    voter = ExampleVoter(MemoryExampleIndex(candidates=5), HashingEmbedder(),
                         classes=classes).fit(store.table(), "x")  # fmt: skip
    codes = [str(c) for c in voter.classes_]
    n, c = 100, len(codes)
    gold = np.arange(n) % c
    right = np.arange(n) % 10 < 6
    nearest = np.where(right, gold, (gold + 1) % c)
    found = Neighbours(
        [[codes[a], codes[g], codes[(g + 2) % c]] for a, g in zip(nearest, gold, strict=True)],
        [np.array([0.99, 0.5, 0.5])] * n, [np.array([1.0, 1.0, 1.0])] * n, [["k"] * 3] * n,
    )  # fmt: skip
    found.codes[0][1:] = [codes[(gold[0] + 3) % c]] * 2  # row 0: right nearest, outvoted
    found.sims[0] = np.array([0.99, 0.9, 0.9])
    shares = np.array([0.3, 0.2, 0.15, 0.12, 0.1, 0.06, 0.04, 0.02, 0.01])
    p_base = np.zeros((n, c))
    for i in range(n):  # the gold sixth, the wrong neighbour's code first
        others = [j for j in range(c) if j not in (gold[i], nearest[i])]
        order = [nearest[i], *others[:4], gold[i], *others[4:]] if not right[i] else [
            *others[:5], gold[i], *others[5:]]  # fmt: skip
        p_base[i, order] = shares
    held = HeldOut(p_base, found, [None] * n, gold, voter)
    fixed = {"exact_weight": 0.8, "exact_trust": 0.95}
    every = np.arange(n)
    for neighbours in ((1, 3), (3, 1)):  # whichever comes first in the grid
        grid = {"neighbours": neighbours, "temperature": (0.5,), "min_similarity": (0.0,),
                "weight": (0.85,)}  # fmt: skip
        (chosen,) = grid_search(held, [every], fixed=fixed, grid=grid)
        fig = {k: held.figures(held.proba({**chosen, "neighbours": k}), every, 0.95)
               for k in (1, 3)}  # fmt: skip
        assert (fig[1]["top1"], fig[1]["top5"]) == (0.6, 0.6)
        assert (fig[3]["top1"], fig[3]["top5"]) == (0.59, 1.0)
        assert chosen["neighbours"] == 3


def test_log_loss_is_per_row_and_floored() -> None:
    from autocoder.examples.fit import MIN_GOLD_P, log_loss

    p = np.array([[0.5, 0.5, 0.0], [0.1, 0.9, 0.0], [1.0, 0.0, 0.0]])
    out = log_loss(p, np.array([0, 1, 2]))
    assert out.shape == (3,)
    assert np.allclose(out[:2], [np.log(2), -np.log(0.9)])
    assert out[2] == -np.log(MIN_GOLD_P) and np.isfinite(out).all()  # a zero gold probability
