"""`autocoder code` with a calibrated model: target precision, partial codes and the output
contract of each status (real classifier + retrieval over the mini taxonomy, hashing embedder)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from autocoder import api
from autocoder.classify.model import EmbeddingClassifier
from autocoder.coding import trust as tr
from autocoder.coding.batch import CodingSummary, code_file, code_frame
from autocoder.coding.loaded import LoadedCoder
from autocoder.coding.mixture import CombinedPredictor
from autocoder.coding.retrieval import RetrievalCoder
from autocoder.config import CoderConfig, ConfigError, load_settings
from autocoder.index import MemoryIndex
from autocoder.records import JobRecord
from autocoder.service.engine import code_pass
from autocoder.workspace import Workspace
from tests.fakes import HashingEmbedder, mini_taxonomy


def _predictor() -> CombinedPredictor:
    tax, embedder = mini_taxonomy(), HashingEmbedder(128)
    index = MemoryIndex()
    index.build(tax, embedder)
    retrieval = RetrievalCoder(index, embedder, classes=tax.leaf_codes(), top_k=5).fit()
    texts = [(t, c.code) for c in tax.leaves() for t in [c.title, *c.alt_titles]]
    clf = EmbeddingClassifier(embedder, classes=tax.leaf_codes(), hidden=16, epochs=8, seed=0)
    clf.fit([JobRecord(t) for t, _ in texts * 3], [c for _, c in texts * 3])
    return CombinedPredictor(clf, retrieval, retrieval_weight=0.4).fit()


def _calibrate(predictor: CombinedPredictor, model_dir: Path) -> dict:
    """Fit the sidecar on held-out-like rows as benchmarks/trust.py does."""
    tax = mini_taxonomy()
    leaves = tax.leaves()
    records, gold = [], []
    for i, c in enumerate(leaves):
        other = leaves[(i + 1) % len(leaves)]
        for t in [c.title, *c.alt_titles]:
            for employer in ("acme", "hy-vee", "st. mary's"):  # rows enough for the margin
                records.append(JobRecord(f"{t.lower()}, {employer}"))
            records.append(JobRecord(f"{t.split()[0]} {other.title}"))
            gold += [frozenset([c.code])] * 4
    scores = tr.score_records(predictor, records)
    levels = tr.hierarchy(tax, [str(c) for c in scores.classes])
    trust = tr.fit_trust(scores, gold, levels, options=tr.SegmentOptions(), fitted_on={})
    model_dir.mkdir(parents=True, exist_ok=True)
    tr.save_trust(trust, model_dir)
    return trust


def _input(tmp_path: Path) -> Path:
    titles = [
        "software engineer, hy-vee",
        "staff nurse, mayo clinic",
        "registered nurses",
        "software statisticians",
        "qwzx blorf",
        "",
    ]
    path = tmp_path / "in.csv"
    pd.DataFrame({"id": [f"r{i}" for i in range(len(titles))], "title": titles}).to_csv(
        path, index=False
    )
    return path


def _loaded(predictor: CombinedPredictor, model_dir: Path) -> LoadedCoder:
    return LoadedCoder.from_predictor(predictor, taxonomy=mini_taxonomy(), model_dir=model_dir)


def _code(
    tmp_path: Path, coder: LoadedCoder, options: CoderConfig, name: str
) -> tuple[CodingSummary, pd.DataFrame]:
    out = tmp_path / name
    summary = code_file(
        _input(tmp_path), out, coder=coder, runs_dir=tmp_path / "runs", options=options,
        show_progress=False,
    )  # fmt: skip
    return summary, pd.read_csv(out, dtype=str, keep_default_na=False)


def test_output_contract_for_each_status(tmp_path: Path) -> None:
    predictor = _predictor()
    tax = mini_taxonomy()
    options = CoderConfig(target_precision=0.9)
    coder = _loaded(predictor, tmp_path / "model")
    assert tr.coder_assigner(coder, options).trust is None
    _calibrate(predictor, tmp_path / "model")
    # the coder holds the sidecar it was loaded with: load it again to see the calibration
    assert tr.coder_assigner(coder, options).trust is None
    coder = _loaded(predictor, tmp_path / "model")
    assigner = tr.coder_assigner(coder, options)
    assert assigner.trust is not None and assigner.target == 0.9
    summary, df = _code(tmp_path, coder, options, "out.csv")
    assert summary.calibration["target_precision"] == 0.9
    assert [lv["level"] for lv in summary.calibration["levels"]] == ["occupation", "major"]
    assert "target precision 0.9" in tr.describe_thresholds(summary.calibration)
    assert len(df) == 6 and df["code_1"].iloc[:5].ne("").all()  # every row keeps its codes
    for _, row in df.iterrows():
        if row["status"] == "coded":
            assert row["assigned_code"] == row["code_1"]
            assert row["assigned_level"] == "occupation"
            assert row["assigned_label"] == row["label_1"]
            assert row["assigned_confidence"] == row["confidence"]
        elif row["status"] == "partial":
            group = tax.get(row["assigned_code"])
            assert row["assigned_level"] == "major" == group.level_name
            assert row["assigned_label"] == group.title
            assert float(row["assigned_confidence"]) > 0
        else:
            assert row["status"] in ("review", "error:empty_text")
            assert row[["assigned_code", "assigned_level", "assigned_label"]].eq("").all()
            assert row["assigned_confidence"] == ""
    assert df["status"].iloc[5] == "error:empty_text"
    assert df["status"].iloc[0] == "coded"  # the employer segment is not what is coded


def test_records_with_a_description_are_said_to_be_outside_the_calibration(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    predictor = _predictor()
    plain = _loaded(predictor, tmp_path / "plain")  # no calibration: nothing to warn about
    df = pd.DataFrame({"id": ["a", "b", "c"], "title": ["registered nurses"] * 3,
                       "description": ["", "care for patients", "give medicines"]})  # fmt: skip
    with caplog.at_level("WARNING", logger="autocoder.coding.batch"):
        code_frame(plain, df, CoderConfig(target_precision=None))
    assert "fitted on titles alone" not in caplog.text
    _calibrate(predictor, tmp_path / "model")
    calibrated = _loaded(predictor, tmp_path / "model")
    with caplog.at_level("WARNING", logger="autocoder.coding.batch"):
        code_frame(calibrated, df.assign(description=""), CoderConfig(target_precision=0.9))
        assert "fitted on titles alone" not in caplog.text  # titles alone: within it
        out = code_frame(calibrated, df, CoderConfig(target_precision=0.9))
    assert caplog.text.count("fitted on titles alone") == 1
    assert "records with a description (2 of the 3 in this pass)" in caplog.text
    assert len(out) == 3  # coded all the same
    # a service worker codes pass after pass: it says so once, not once per pass
    caplog.clear()
    options, warned = CoderConfig(target_precision=0.9), False
    with caplog.at_level("WARNING", logger="autocoder.coding.batch"):
        for _ in range(3):
            tables, warned = code_pass(calibrated, [df, df.iloc[:1]], options,
                                       warned_descriptions=warned)  # fmt: skip
            assert [len(t) for t in tables] == [3, 1]
    assert warned and caplog.text.count("fitted on titles alone") == 1


def test_a_target_precision_that_cannot_apply_is_said(tmp_path: Path) -> None:
    predictor = _predictor()
    plain = _loaded(predictor, tmp_path / "plain")
    note = tr.uncalibrated_note(plain, CoderConfig(target_precision=0.95, threshold=0.4))
    assert "target_precision 0.95 does not apply: this model has no calibration" in note
    assert "top probability >= 0.4" in note
    assert "--model pretrained" not in note  # the packaged model codes O*NET 29.2, not this
    assert tr.uncalibrated_note(plain, CoderConfig(target_precision=None)) == ""
    _calibrate(predictor, tmp_path / "model")
    calibrated = _loaded(predictor, tmp_path / "model")
    assert tr.uncalibrated_note(calibrated, CoderConfig(target_precision=0.95)) == ""
    alone = LoadedCoder.from_predictor(
        predictor.model, taxonomy=mini_taxonomy(), model_dir=tmp_path / "model"
    )  # its calibration is for it mixed with retrieval
    assert "is coded alone" in tr.uncalibrated_note(alone, CoderConfig(target_precision=0.95))


def test_uncalibrated_retrieval_over_onet_is_pointed_to_the_packaged_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tr, "pretrained_fits", lambda taxonomy: True)  # as for O*NET 29.2
    retrieval = LoadedCoder.from_predictor(_predictor().retrieval, taxonomy=mini_taxonomy())
    note = tr.uncalibrated_note(retrieval, CoderConfig(target_precision=0.95))
    assert "retrieval alone has no calibration" in note and "--model pretrained" in note


def test_bare_threshold_on_the_calibrated_confidence(tmp_path: Path) -> None:
    predictor = _predictor()
    _calibrate(predictor, tmp_path / "model")
    options = CoderConfig(threshold=0.3, target_precision=None)
    summary, df = _code(tmp_path, _loaded(predictor, tmp_path / "model"), options, "bare.csv")
    assert summary.calibration == {"calibrated": True, "threshold": 0.3}
    ok = df["status"].isin(["coded", "review"])
    assert ok.sum() == 5 and "partial" not in set(df["status"])
    conf = df.loc[ok, "confidence"].astype(float)
    assert ((conf >= 0.3) == (df.loc[ok, "status"] == "coded")).all()


def test_threshold_and_target_precision_are_exclusive(tmp_path: Path) -> None:
    settings = load_settings(overrides=['index.backend="memory"'])
    ws = Workspace.resolve(tmp_path / "home")
    with pytest.raises(ConfigError, match="not both"):
        api.code(settings, ws, _input(tmp_path), tmp_path / "x.csv", threshold=0.3,
                 target_precision=0.9)  # fmt: skip
