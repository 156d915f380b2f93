"""Segment choice, per-level calibration, target precision and partial codes (autocoder.coding.trust)
with a real classifier and a real retrieval coder over a small taxonomy (hashing embedder)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autocoder.classify.model import EmbeddingClassifier
from autocoder.coding import trust as tr
from autocoder.coding.examples import WithExamples
from autocoder.coding.loaded import load_trust
from autocoder.coding.mixture import CombinedPredictor
from autocoder.coding.retrieval import RetrievalCoder
from autocoder.examples.index import MemoryExampleIndex
from autocoder.examples.ops import add_rows, frame_rows
from autocoder.examples.store import AddSpec, ExampleStore
from autocoder.examples.vote import ExampleVoter
from autocoder.index import MemoryIndex
from autocoder.records import JobRecord
from autocoder.taxonomy.esco import import_esco
from autocoder.taxonomy.model import Taxonomy
from tests.fakes import HashingEmbedder, mini_taxonomy


def _predictor(tax: Taxonomy) -> CombinedPredictor:
    embedder = HashingEmbedder(128)
    index = MemoryIndex()
    index.build(tax, embedder)
    codes = tax.leaf_codes()
    retrieval = RetrievalCoder(index, embedder, classes=codes, top_k=5).fit()
    texts = [(t, c.code) for c in tax.leaves() for t in [c.title, *c.alt_titles]]
    clf = EmbeddingClassifier(embedder, classes=codes, hidden=16, epochs=8, seed=0).fit(
        [JobRecord(t) for t, _ in texts * 3], [c for _, c in texts * 3]
    )
    return CombinedPredictor(clf, retrieval, retrieval_weight=0.4).fit()


def _rows(tax: Taxonomy) -> tuple[list[JobRecord], list[frozenset[str]]]:
    """Held-out-like rows: titles with an employer, lower-cased, some unlike anything."""
    records, gold = [], []
    employers = ["hy-vee", "acme corp", "st. mary's", "uncommon schools"]
    leaves = tax.leaves()
    for i, c in enumerate(leaves):
        other = leaves[(i + 1) % len(leaves)]
        for j, t in enumerate([c.title, *c.alt_titles]):
            for k in range(3):  # enough rows for out-of-fold thresholds with a margin
                records.append(JobRecord(f"{t.lower()}, {employers[(i + j + k) % 4]}"))
                gold.append(frozenset([c.code]))
            # vague, half of it another code's words: often wrong
            records.append(JobRecord(f"{t.split()[0].lower()} {other.title.split()[-1].lower()}"))
            gold.append(frozenset([c.code]))
    return records, gold


@pytest.fixture(scope="module")
def fitted() -> tuple[CombinedPredictor, Taxonomy, dict, tr.Scores, list[frozenset[str]]]:
    tax = mini_taxonomy()
    predictor = _predictor(tax)
    records, gold = _rows(tax)
    scores = tr.score_records(predictor, records)
    levels = tr.hierarchy(tax, [str(c) for c in scores.classes])
    trust = tr.fit_trust(scores, gold, levels, options=tr.SegmentOptions(), fitted_on={"n": 1})
    return predictor, tax, trust, scores, gold


def test_employer_segment_is_not_what_gets_coded(fitted: tuple) -> None:
    _, _, _, scores, _ = fitted
    assert scores.text[0] == "software developers"  # "software developers, hy-vee"
    assert scores.n_segments[0] == 2 and scores.n_segments[3] == 0  # row 3: the vague title


def test_calibration_refit_changes_with_the_data_and_round_trips(
    fitted: tuple, tmp_path: Path
) -> None:
    predictor, tax, trust, scores, gold = fitted
    levels = tr.hierarchy(tax, [str(c) for c in scores.classes])
    half = np.arange(len(gold)) < len(gold) // 2
    again = tr.fit_trust(
        tr.take(scores, half),
        [g for g, h in zip(gold, half, strict=True) if h],
        levels,
        options=tr.SegmentOptions(),
        fitted_on={"n": 2},
    )
    assert [e["name"] for e in trust["levels"]] == ["occupation", "major"]
    assert again["levels"][0]["calibrator"]["kind"] == "logistic"
    assert again["levels"][0]["calibrator"] != trust["levels"][0]["calibrator"]
    tr.save_trust(again, tmp_path)
    loaded = load_trust(tmp_path)
    assert loaded is not None and loaded["fitted_on"] == {"n": 2}
    assert load_trust(tmp_path / "nowhere") is None


def test_target_precision_threshold_on_the_fitted_model(fitted: tuple) -> None:
    _, tax, trust, scores, gold = fitted
    levels = tr.hierarchy(tax, [str(c) for c in scores.classes])
    correct = tr.level_correct(tr.level_scores(scores, levels), levels, gold)
    for target in (0.9, 0.93):  # stored, and fitted now from the kept calibration data
        thr = tr.thresholds_for(trust, target)
        a = tr.assign_rows(trust, scores, levels, target=target)
        for lv, fit in enumerate(thr):
            took = a.level == lv
            if fit["threshold"] is not None and took.any():
                assert correct[lv][took].mean() >= target
                assert fit["precision"] >= target
    assert str(0.93) not in trust["thresholds"]


def test_partial_codes_on_the_onet_hierarchy(fitted: tuple) -> None:
    _, tax, trust, scores, _ = fitted
    levels = tr.hierarchy(tax, [str(c) for c in scores.classes])
    a = tr.assign_rows(trust, scores, levels, target=0.9)
    assert set(a.status) <= {"coded", "partial", "review"}
    for i, status in enumerate(a.status):
        if status == "coded":
            assert a.level_name[i] == "occupation" and a.code[i] in tax.leaf_codes()
        elif status == "partial":
            assert a.level_name[i] == "major" and tax.get(a.code[i]).level == 1
            assert a.assigned_confidence[i] >= tr.thresholds_for(trust, 0.9)[1]["threshold"]
        else:
            assert a.code[i] == "" and a.level_name[i] == "" and np.isnan(a.assigned_confidence[i])
    bare = tr.assign_rows(trust, scores, levels, threshold=0.5)
    assert "partial" not in bare.status
    assert [s == "coded" for s in bare.status] == (bare.confidence >= 0.5).tolist()


def test_partial_codes_on_the_esco_hierarchy(fixtures_dir: Path) -> None:
    tax = import_esco(fixtures_dir / "esco_mini")
    leaves = tax.leaf_codes()
    levels = tr.hierarchy(tax, leaves)
    assert [name for name, _ in levels] == ["occupation", "isco4", "isco3", "isco2", "isco1"]
    rng = np.random.default_rng(0)
    n = 600
    proba = rng.dirichlet(np.full(len(leaves), 0.5), size=n)
    truth = proba.argmax(axis=1)
    gold = []
    for i in range(n):  # right code half the time, else a sibling under the same ISCO group
        same = [
            j for j, c in enumerate(leaves) if levels[1][1][c] == levels[1][1][leaves[truth[i]]]
        ]
        gold.append(frozenset([leaves[truth[i] if i % 2 else rng.choice(same)]]))
    zeros = np.zeros(n)
    scores = tr.Scores(
        np.asarray(leaves), proba, None, None, zeros, zeros, zeros, zeros + 2, [""] * n
    )
    trust = tr.fit_trust(scores, gold, levels, options=tr.SegmentOptions(), fitted_on={})
    a = tr.assign_rows(trust, scores, levels, target=0.9)
    partial = [i for i, s in enumerate(a.status) if s == "partial"]
    assert partial, "ISCO groups are right where the occupation is a coin flip"
    correct = tr.level_correct(tr.level_scores(scores, levels), levels, gold)
    for i in partial:  # the group whose summed probability is highest at the assigned level
        assert tax.get(a.code[i]).level_name == a.level_name[i] != "occupation"
        assert a.code[i] in set(levels[a.level[i]][1].values())
    took = [np.asarray(a.level) == lv for lv in range(1, len(levels))]
    assert all(correct[lv + 1][t].mean() >= 0.9 for lv, t in enumerate(took) if t.any())


def test_the_packaged_model_ships_its_calibration() -> None:
    from autocoder.coding.loaded import pretrained_dir

    trust = load_trust(pretrained_dir())
    assert trust is not None
    assert [e["name"] for e in trust["levels"]] == ["onet", "detailed", "broad", "minor", "major"]
    fitted = tr.thresholds_for(trust, 0.95)
    assert fitted[0]["threshold"] is not None and fitted[0]["precision"] >= 0.95
    assert not any(p in (pretrained_dir() / tr.SIDECAR).read_text() for p in ("/tmp/", "/work/"))


def _with_examples(
    predictor: CombinedPredictor, tax: Taxonomy, tmp_path: Path, rows: list[tuple[str, str, str]]
) -> WithExamples:
    store = ExampleStore(tmp_path / "ex")
    df = pd.DataFrame(rows, columns=["title", "code", "annotator"])
    add_rows(store, tax, frame_rows(df, AddSpec("code"), source="s", file="f.csv"))
    voter = ExampleVoter(MemoryExampleIndex(), HashingEmbedder(128), classes=tax.leaf_codes())
    voter.fit(store.table(), store.content_hash())
    return WithExamples(predictor, voter, weight=0.5, exact_trust=0.95).fit()


def test_coded_examples_are_trusted_under_a_target_precision(fitted: tuple, tmp_path: Path) -> None:
    predictor, tax, trust, _, _ = fitted
    levels = tuple(tr.hierarchy(tax, [str(c) for c in predictor.classes_]))
    titles = ["pastry froster", "night porter", "zz unknown words"]
    records = [JobRecord(t) for t in titles]
    base_proba = predictor.predict_proba(records)
    classes = [str(c) for c in predictor.classes_]
    # the code the model finds least likely for the first title; the second title split
    unlikely = classes[int(np.argmin(base_proba[0]))]
    a, b = classes[0], classes[1]
    model = _with_examples(
        predictor, tax, tmp_path,
        [("Pastry Froster", unlikely, "ann"), ("Night porter", a, "ann"),
         ("Night porter", b, "bob")],
    )  # fmt: skip
    assigner = tr.Assigner(levels=levels, threshold=0.5, target=0.95, trust=trust)
    proba, cells = assigner.predict(model, records)
    assert proba.shape == (3, len(classes))
    # an answered title comes back as answered, coded at the detailed level
    assert classes[int(proba[0].argmax())] == unlikely
    assert cells["status"][0] == "coded" and cells["assigned_code"][0] == unlikely
    assert cells["confidence"][0] >= 0.95
    # annotators who disagree do not make the title certain: half the trust at most
    assert proba[1].max() < 0.6
    floor = tr.exact_floor(model, records, proba)
    assert floor is not None and floor[0] == pytest.approx(0.95)
    assert floor[1] <= 0.95 * 0.5 and floor[2] == 0.0
    # what no example covers is assigned exactly as without examples
    alone = tr.Assigner(levels=levels, threshold=0.5, target=0.95, trust=trust)
    _, base = alone.predict(predictor, records[2:])
    assert cells["status"][2] == base["status"][0]
    assert cells["confidence"][2] == pytest.approx(base["confidence"][0], abs=1e-5)  # float32 noise
    assert tr.supports_segments(model)


def test_thresholds_come_from_the_trusted_rows_only(fitted: tuple) -> None:
    """``threshold_rows``: the calibrators learn from every row, the thresholds and the kept
    calibration data only from the rows whose gold is trusted."""
    _, tax, trust, scores, gold = fitted
    levels = tr.hierarchy(tax, [str(c) for c in scores.classes])
    keep = np.arange(len(gold)) % 2 == 0
    part = tr.fit_trust(scores, gold, levels, options=tr.SegmentOptions(), fitted_on={},
                        threshold_rows=keep)  # fmt: skip
    assert part["levels"] == trust["levels"]
    assert part["threshold_fit"] == {"confidence": "out of fold", "folds": 5, "rows": keep.sum(),
                                     "margin_sd": 1.0}  # fmt: skip
    assert [len(c) for c in part["data"]["confidence"]] == [keep.sum()] * len(levels)
    assert trust["threshold_fit"]["rows"] == len(gold)
    with pytest.raises(ValueError, match="boolean mask"):
        tr.fit_trust(scores, gold, levels, options=tr.SegmentOptions(), fitted_on={},
                     threshold_rows=np.ones(3, dtype=bool))  # fmt: skip
