"""Fitting a model's calibration sidecar from labeled titles (autocoder.coding.trust_fit), with
a real classifier and a real retrieval coder over a small taxonomy (hashing embedder)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autocoder.coding import trust as tr
from autocoder.coding import trust_fit as tf
from autocoder.coding.examples import WithExamples
from autocoder.io import InputError
from autocoder.records import JobRecord
from tests.coding.test_trust import _predictor
from tests.fakes import mini_taxonomy, tiny_taxonomy

EMPLOYERS = ["hy-vee", "acme corp", "st. mary's", "uncommon schools", "walmart"]


def _table() -> tf.CalibrationTable:
    """Titles as postings write them ("title, employer") and vague ones, with their codes."""
    tax = mini_taxonomy()
    titles, gold = [], []
    leaves = tax.leaves()
    for i, c in enumerate(leaves):
        other = leaves[(i + 1) % len(leaves)]
        for t in [c.title, *c.alt_titles]:
            for e in EMPLOYERS:
                titles.append(f"{t.lower()}, {e}")
                gold.append(frozenset([c.code]))
            titles.append(f"{t.split()[0].lower()} {other.title.split()[-1].lower()}")
            gold.append(frozenset([c.code]))
    return tf.CalibrationTable(titles, gold, "postings")


def test_calibration_table_reads_codes_and_names_each_bad_row() -> None:
    tax = mini_taxonomy()
    good = pd.DataFrame(
        {
            "title": ["Staff Nurse", "python dev, acme"],
            "codes": ["29-1141.00", "15-1252.00;15-1211.00"],
        }
    )
    table = tf.calibration_table(good, tax, name="ok.csv")
    assert table.titles == ["Staff Nurse", "python dev, acme"]
    assert table.gold == [frozenset({"29-1141.00"}), frozenset({"15-1252.00", "15-1211.00"})]
    bad = pd.DataFrame(
        {
            "job": ["Staff Nurse", "", "astronaut", "health worker", "clerk"],
            "soc": ["29-1141.00", "29-1141.00", "99-9999.00", "29-0000", ""],
        }
    )
    with pytest.raises(InputError) as err:
        tf.calibration_table(bad, tax, title_column="job", code_column="soc", name="bad.csv")
    text = str(err.value)
    assert text.startswith("bad.csv: 4 bad rows")
    assert "row 2 (''): empty title" in text
    assert "row 3 ('astronaut'): unknown code '99-9999.00'" in text
    assert "row 4 ('health worker'): code '29-0000' is a group" in text
    assert "row 5 ('clerk'): empty code" in text and "row 1 " not in text
    with pytest.raises(InputError, match="no column 'codes'.*--code-column"):
        tf.calibration_table(bad, tax, title_column="job", name="bad.csv")


def test_segment_choice_is_the_best_of_the_grid_and_drops_the_employer() -> None:
    tax = mini_taxonomy()
    predictor, table = _predictor(tax), _table()
    records = [JobRecord(t) for t in table.titles]
    cs = tr.candidate_scores(predictor, records, tr.SegmentOptions())
    options, grid = tf.choose_segments([cs], table.gold)
    assert len(grid) == len(tf.SEGMENT_GRID[0]) * len(tf.SEGMENT_GRID[1])
    assert grid[f"{options.whole_bonus}:{options.first_bonus}"] == max(grid.values())
    chosen = tr.choose(cs, options)
    assert chosen.text[0] == "software developers"  # "software developers, hy-vee"


def _candidates(codes: list[str], owner: list[int], position: list[int]) -> tr.CandidateScores:
    """Hand-made candidate scores: each candidate's retrieval puts all its mass on its code."""
    classes = np.asarray(["a", "b"])
    p = np.asarray([[1.0, 0.0] if c == "a" else [0.0, 1.0] for c in codes])
    n = max(owner) + 1
    return tr.CandidateScores(
        classes, [f"t{i}" for i in range(len(codes))], np.asarray(owner), np.asarray(position),
        np.asarray([owner.count(i) - 1 for i in range(n)], dtype=np.float64), None, p,
        np.linspace(0.5, 0.9, len(codes)), 0.5, 1.0,
    )  # fmt: skip


def test_the_title_as_written_is_chosen_only_when_it_codes_best() -> None:
    gold = [frozenset({"a"}), frozenset({"a"})]
    segmented = _candidates(["b", "b", "b", "b"], [0, 0, 1, 1], [0, 1, 0, 1])  # every one wrong
    written_right = _candidates(["a", "a"], [0, 1], [0, 0])
    options, grid = tf.choose_segments([segmented], gold, as_written=[written_right])
    assert options == tr.SegmentOptions(enabled=False) and grid[tf.AS_WRITTEN] == 1.0
    written_wrong = _candidates(["b", "b"], [0, 1], [0, 0])  # a tie: segments are kept
    options, grid = tf.choose_segments([segmented], gold, as_written=[written_wrong])
    assert options.enabled and grid[tf.AS_WRITTEN] == 0.0
    options, grid = tf.choose_segments([segmented], gold)  # not offered: not in the grid
    assert options.enabled and tf.AS_WRITTEN not in grid


def test_a_calibration_fitted_as_written_codes_the_title_unsegmented() -> None:
    tax = mini_taxonomy()
    predictor = _predictor(tax)
    trust = {"segments": {"whole_bonus": 0.02, "first_bonus": 0.03, "enabled": False}}
    options = tr.segment_options(trust)
    assert not options.enabled
    records = [JobRecord("Senior software developers, hy-vee")]
    assert tr.score_records(predictor, records, options=options).text == [records[0].title]
    assert tr.score_records(predictor, records).text != [records[0].title]  # segmented


def test_fit_sidecar_gives_a_calibration_the_assigner_uses() -> None:
    tax = mini_taxonomy()
    predictor, table = _predictor(tax), _table()
    trust = tf.fit_sidecar(predictor, tax, table, fitted_on={"files": {"postings": len(table)}})
    assert [e["name"] for e in trust["levels"]] == ["occupation", "major"]
    assert trust["fitted_on"]["rows"] == len(table) and 0 < trust["fitted_on"]["top1"] < 1
    assert trust["fitted_on"]["files"] == {"postings": len(table)}
    assert set(trust["segments"]) == {"whole_bonus", "first_bonus", "enabled"}
    assert tf.AS_WRITTEN in trust["fitted_on"]["segment_grid_top1"]
    assigner = tr.Assigner(
        levels=tuple(tr.hierarchy(tax, [str(c) for c in predictor.classes_])),
        threshold=0.5,
        target=0.9,
        trust=trust,
    )
    _, cells = assigner.predict(predictor, [JobRecord(t) for t in table.titles])
    status = np.asarray(cells["status"])
    right = np.asarray([c in g for c, g in zip(cells["assigned_code"], table.gold, strict=True)])
    assert set(status) <= {"coded", "partial", "review"} and (status == "coded").any()
    # the detailed threshold reaches the target on the rows it was fitted on
    assert right[status == "coded"].mean() >= 0.9


def test_fit_sidecar_refuses_too_few_rows() -> None:
    tax = mini_taxonomy()
    few = tf.CalibrationTable(["staff nurse"] * 5, [frozenset({"29-1141.00"})] * 5)
    with pytest.raises(ValueError, match="5 labeled rows cannot calibrate"):
        tf.fit_sidecar(_predictor(tax), tax, few, fitted_on={})


def test_fit_sidecar_with_examples_calibrates_the_blend_coding_uses(tmp_path: Path) -> None:
    """A predictor with coded examples voting is calibrated on the scores ``autocoder code``
    gives: the base's segment scores with the examples blended in."""
    from autocoder.examples.index import MemoryExampleIndex
    from autocoder.examples.ops import add_rows, frame_rows
    from autocoder.examples.store import AddSpec, ExampleStore
    from autocoder.examples.vote import ExampleVoter
    from tests.fakes import HashingEmbedder

    tax = mini_taxonomy()
    predictor, table = _predictor(tax), _table()
    plain = tf.fit_sidecar(predictor, tax, table, fitted_on={})
    # every vague title (the base's misses) coded as its gold: exact matches when calibrating
    vague = [(t, next(iter(g)), "ann") for t, g in zip(table.titles, table.gold, strict=True)
             if "," not in t]  # fmt: skip
    store = ExampleStore(tmp_path / "ex")
    rows = pd.DataFrame(vague, columns=["title", "code", "annotator"])
    add_rows(store, tax, frame_rows(rows, AddSpec("code"), source="s", file="f.csv"))
    voter = ExampleVoter(MemoryExampleIndex(), HashingEmbedder(128), classes=tax.leaf_codes(),
                         min_similarity=0.99)  # only the very titles vote  # fmt: skip
    voter.fit(store.table(), store.content_hash())
    voting = WithExamples(predictor, voter, weight=0.5, exact_trust=0.95).fit()
    blended = tf.fit_sidecar(voting, tax, table, fitted_on={})
    assert blended["fitted_on"]["top1"] > plain["fitted_on"]["top1"]
    assert blended["levels"] != plain["levels"]


def test_a_calibration_fitted_with_examples_warns_when_they_changed_or_stopped_voting(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from autocoder.coding.examples import warn_calibration_drift
    from autocoder.examples.ops import add_rows, frame_rows
    from autocoder.examples.store import AddSpec, ExampleStore

    store = ExampleStore(tmp_path / "ex")
    first = pd.DataFrame({"title": ["ward sister"], "code": ["29-1141.00"]})
    add_rows(store, tiny_taxonomy(), frame_rows(first, AddSpec("code"), source="s", file="f"))
    calibration = {"fitted_on": {"examples": {"store": store.content_hash(), "size": 1}}}
    voting = object.__new__(WithExamples)  # only its type is read
    with caplog.at_level(logging.WARNING):
        warn_calibration_drift(calibration, voting, store)
        warn_calibration_drift({"fitted_on": {}}, object(), store)  # fitted without: quiet
    assert caplog.text == ""
    more = pd.DataFrame({"title": ["python backend"], "code": ["15-1252.00"]})
    add_rows(store, tiny_taxonomy(), frame_rows(more, AddSpec("code"), source="s", file="g"))
    with caplog.at_level(logging.WARNING):
        warn_calibration_drift(calibration, voting, store)
    assert "fitted on 1 examples; the store has changed since and holds 2" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        warn_calibration_drift(calibration, object(), store)
    assert "do not vote now" in caplog.text


def test_calibration_fits_how_far_an_exact_title_match_is_trusted(tmp_path: Path) -> None:
    """An office's history that codes the very title otherwise every other time must not make
    its exact matches near-certain: the calibration measures their precision and coding uses
    it instead of the office's ``exact_trust``."""
    from autocoder.examples.index import MemoryExampleIndex
    from autocoder.examples.ops import add_rows, frame_rows
    from autocoder.examples.store import AddSpec, ExampleStore
    from autocoder.examples.vote import ExampleVoter
    from tests.fakes import HashingEmbedder

    tax = mini_taxonomy()
    predictor, table = _predictor(tax), _table()
    leaves = tax.leaf_codes()
    history = []
    for i, (title, gold) in enumerate(zip(table.titles, table.gold, strict=True)):
        code = next(iter(gold))
        if i % 2:  # coded to the next occupation: the history disagrees with the gold
            code = leaves[(leaves.index(code) + 1) % len(leaves)]
        history.append((title, code, "ann"))
    store = ExampleStore(tmp_path / "ex")
    frame = pd.DataFrame(history, columns=["title", "code", "annotator"]).drop_duplicates()
    add_rows(store, tax, frame_rows(frame, AddSpec("code"), source="s", file="f.csv"))
    voter = ExampleVoter(MemoryExampleIndex(), HashingEmbedder(128), classes=tax.leaf_codes(),
                         min_similarity=0.99)  # only the very titles vote  # fmt: skip
    voter.fit(store.table(), store.content_hash())
    voting = WithExamples(predictor, voter, weight=0.5, exact_trust=0.95).fit()

    assert "exact" not in tf.fit_sidecar(predictor, tax, table, fitted_on={})
    sidecar = tf.fit_sidecar(voting, tax, table, fitted_on={})
    exact = sidecar["exact"]
    assert exact["rows"] == len(table) and exact["office_exact_trust"] == 0.95
    assert 0.3 < exact["trust"] < 0.7 and exact["right"] < exact["rows"]
    assert tr.fitted_exact_trust(sidecar) == exact["trust"]

    records = [JobRecord(t) for t in table.titles]
    levels = tuple(tr.hierarchy(tax, leaves))
    office = {k: v for k, v in sidecar.items() if k != "exact"}
    _, fitted = tr.Assigner(levels=levels, threshold=0.5, trust=sidecar).predict(voting, records)
    _, ruled = tr.Assigner(levels=levels, threshold=0.5, trust=office).predict(voting, records)
    assert np.all(fitted["confidence"] <= ruled["confidence"] + 1e-12)
    assert np.any(fitted["confidence"] < ruled["confidence"] - 0.1)

    n = tr.MIN_EXACT_ROWS - 1
    few = tr.fit_exact_trust(voting, records[:n], table.gold[:n])
    assert few is not None and few["trust"] is None  # too few matches: the office's rule
    assert tr.fitted_exact_trust({"exact": few}) is None
    assert tr.fit_exact_trust(predictor, records, table.gold) is None


def test_a_reviewers_answer_keeps_the_offices_exact_trust(tmp_path: Path) -> None:
    """The fitted trust describes the office's history; a title a reviewer answered stays
    trusted as answered, and answered titles are not part of the fit."""
    from autocoder.examples.index import MemoryExampleIndex
    from autocoder.examples.ops import add_rows, frame_rows
    from autocoder.examples.store import AddSpec, ExampleStore, review_source
    from autocoder.examples.vote import ExampleVoter
    from tests.fakes import HashingEmbedder

    tax = mini_taxonomy()
    predictor, table = _predictor(tax), _table()
    leaves = tax.leaf_codes()
    store = ExampleStore(tmp_path / "ex")
    history = pd.DataFrame({"title": ["night porter"], "code": [leaves[1]]})
    add_rows(store, tax, frame_rows(history, AddSpec("code"), source="history", file="h.csv"))
    answers = pd.DataFrame({"title": [*dict.fromkeys(table.titles)]}).assign(code=leaves[0])
    add_rows(store, tax, frame_rows(answers, AddSpec("code"), source=review_source("p"),
                                    file="answers"))  # fmt: skip
    voter = ExampleVoter(MemoryExampleIndex(), HashingEmbedder(128), classes=leaves,
                         min_similarity=0.99).fit(store.table(), store.content_hash())  # fmt: skip
    voting = WithExamples(predictor, voter, weight=0.5, exact_trust=0.95).fit()
    records = [JobRecord(table.titles[0]), JobRecord("Night Porter"), JobRecord("zz nothing")]
    assert voter.reviewed(records).tolist() == [True, False, False]
    _, conf = voting.exact_confidence(records, trust=0.3)
    assert conf.tolist() == pytest.approx([0.95, 0.3, 0.0])
    fitted = tr.fit_exact_trust(voting, [JobRecord(t) for t in table.titles], table.gold)
    assert fitted is not None and fitted["rows"] == 0 and fitted["trust"] is None
