"""Evaluation metrics and report, on small hand-computed cases."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autocoder.evaluate import (
    coverage_precision_curve,
    detect_scheme,
    evaluate,
    expected_calibration_error,
    hierarchy_level_fns,
    hit_ranks,
    level_accuracy,
    macro_accuracy,
    mean_reciprocal_rank,
    per_class_table,
    reliability_table,
    run_eval,
    structural_level_fns,
    top_k_accuracy,
    topk_hits,
    write_report,
)
from autocoder.taxonomy.model import Code, Taxonomy

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

RANKED = np.array(
    [
        ["a", "b", "c"],  # gold a: rank 1
        ["b", "a", "c"],  # gold a: rank 2
        ["c", "b", "a"],  # gold a: rank 3
        ["x", "y", "z"],  # gold a: absent
    ],
    dtype=object,
)
GOLD_A = [("a",)] * 4


# --- ranking metrics ---------------------------------------------------------------------------
def test_topk_hits_and_accuracy() -> None:
    assert topk_hits(RANKED, GOLD_A, k=1).tolist() == [True, False, False, False]
    assert topk_hits(RANKED, GOLD_A, k=2).tolist() == [True, True, False, False]
    assert topk_hits(RANKED, GOLD_A, k=3).tolist() == [True, True, True, False]
    assert top_k_accuracy(RANKED, GOLD_A, k=1) == pytest.approx(0.25)
    assert top_k_accuracy(RANKED, GOLD_A, k=3) == pytest.approx(0.75)
    # k beyond N is the same as N
    assert top_k_accuracy(RANKED, GOLD_A, k=10) == pytest.approx(0.75)


def test_topk_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="k must be >= 1"):
        topk_hits(RANKED, GOLD_A, k=0)
    with pytest.raises(ValueError, match="4 rows but gold has 3"):
        topk_hits(RANKED, GOLD_A[:3], k=1)


def test_mean_reciprocal_rank() -> None:
    assert hit_ranks(RANKED, GOLD_A).tolist() == [1, 2, 3, 0]
    assert mean_reciprocal_rank(RANKED, GOLD_A) == pytest.approx((1 + 1 / 2 + 1 / 3 + 0) / 4)


def test_multiple_acceptable_gold_codes() -> None:
    gold = [("z", "b"), ("q", "c"), ("a",), ("y", "x")]
    # row 0: b at rank 2; row 1: c at rank 3; row 2: a at rank 3; row 3: x at rank 1
    assert hit_ranks(RANKED, gold).tolist() == [2, 3, 3, 1]
    assert top_k_accuracy(RANKED, gold, k=1) == pytest.approx(0.25)
    assert mean_reciprocal_rank(RANKED, gold) == pytest.approx((1 / 2 + 1 / 3 + 1 / 3 + 1) / 4)
    # gold may also be plain sets
    assert top_k_accuracy(RANKED, [set(g) for g in gold], k=2) == pytest.approx(0.5)


def test_empty_codes_never_match() -> None:
    ranked = np.array([["", "a"], ["", ""]], dtype=object)
    assert hit_ranks(ranked, [("a",), ("b",)]).tolist() == [2, 0]


def test_macro_differs_from_micro() -> None:
    # class a: 4 rows, 3 right; class b: 1 row, wrong -> micro 3/5, macro (0.75 + 0) / 2
    pred = np.array(["a", "a", "a", "c", "a"], dtype=object)
    gold = [("a",), ("a",), ("a",), ("a",), ("b",)]
    assert top_k_accuracy(pred.reshape(-1, 1), gold, k=1) == pytest.approx(0.6)
    assert macro_accuracy(pred, gold) == pytest.approx(0.375)


def test_macro_uses_first_gold_code_as_class() -> None:
    # both rows accept "b" but their classes are "a" and "b"; a ranked 2-D array is accepted
    pred = np.array([["b", "q"], ["x", "q"]], dtype=object)
    gold = [("a", "b"), ("b",)]
    assert macro_accuracy(pred, gold) == pytest.approx((1.0 + 0.0) / 2)


# --- hierarchy -------------------------------------------------------------------------------
def test_structural_onet_levels() -> None:
    fns = structural_level_fns("onet")
    assert list(fns) == ["major", "minor", "broad", "detailed", "onet"]
    code = "11-2021.00"
    assert [fns[k](code) for k in fns] == ["11-0000", "11-2000", "11-2020", "11-2021", code]
    assert fns["minor"]("15-1252.00") == "15-1200"  # SOC 2018 exception
    assert fns["minor"]("11-3111.00") == "11-3000"
    assert fns["broad"]("29-1221.00") == "29-1210"  # SOC 2018 exception: Physicians
    assert fns["major"]("not a code") is None


def test_structural_onet_levels_agree_with_the_shipped_taxonomy(tmp_path: Path) -> None:
    """Without a taxonomy, eval reads the groups off the code: for every one of the 1,016
    occupations they are the groups the O*NET import puts above it."""
    from autocoder.taxonomy.onet import import_onet
    from autocoder.taxonomy.starter import write_shipped_starter

    tax = import_onet(write_shipped_starter(tmp_path / "starter"))
    fns = structural_level_fns("onet")
    leaves = tax.leaf_codes()
    assert len(leaves) == 1016
    for level in ("major", "minor", "broad", "detailed"):
        wrong = [c for c in leaves if fns[level](c) != tax.parent(c, level)]
        assert not wrong, f"{level}: {wrong[:5]}"


def test_structural_isco_levels() -> None:
    fns = structural_level_fns("isco")
    assert [fns[k]("2654") for k in fns] == ["2", "26", "265", "2654"]
    esco = structural_level_fns("esco")
    assert esco["unit"]("2654.1.7") == "2654"
    assert esco["occupation"]("2654.1.7") == "2654.1.7"
    assert fns["unit"]("26") is None
    with pytest.raises(ValueError, match="unknown code scheme"):
        structural_level_fns("naics")


def test_detect_scheme() -> None:
    assert detect_scheme(["11-1011.00", "15-1252"]) == "onet"
    assert detect_scheme(["2654", "0110"]) == "isco"
    assert detect_scheme(["2654.1.7", "2654"]) == "esco"
    assert detect_scheme(["11-1011.00", "2654"]) is None


def test_level_accuracy_onet() -> None:
    fns = structural_level_fns("onet")
    gold = [("11-1011.00",), ("11-1011.00",), ("11-1011.00",), ("29-1141.00",)]
    pred = np.array(["11-1011.03", "11-1021.00", "11-3031.01", "29-1141.00"], dtype=object)
    got = {k: level_accuracy(pred, gold, level_fn=f) for k, f in fns.items()}
    # row0 same detailed; row1 same minor (11-1000) and broad? 11-1020 vs 11-1010 -> no
    # row2 same major only; row3 exact
    assert got["major"] == pytest.approx(4 / 4)
    assert got["minor"] == pytest.approx(3 / 4)
    assert got["broad"] == pytest.approx(2 / 4)
    assert got["detailed"] == pytest.approx(2 / 4)
    assert got["onet"] == pytest.approx(1 / 4)


def test_level_accuracy_missing_prediction_is_wrong_and_unmappable_gold_skipped() -> None:
    fn = structural_level_fns("onet")["major"]
    gold = [("11-1011.00",), ("not-a-code",)]
    pred = np.array(["", "11-1011.00"], dtype=object)
    # row 0 wrong (no prediction); row 1 has no major group in gold -> not counted
    assert level_accuracy(pred, gold, level_fn=fn) == 0.0


def _onet_taxonomy() -> Taxonomy:
    codes = [
        Code("15-0000", "Computer and Mathematical", 1, "major"),
        Code("15-1200", "Computer Occupations", 2, "minor", parent="15-0000"),
        Code("15-1250", "Software Developers and Testers", 3, "broad", parent="15-1200"),
        Code("15-1252", "Software Developers", 4, "detailed", parent="15-1250"),
        Code("15-1252.00", "Software Developers", 5, "onet", parent="15-1252"),
        Code("15-1253", "Software QA Analysts and Testers", 4, "detailed", parent="15-1250"),
        Code("15-1253.00", "Software QA Analysts", 5, "onet", parent="15-1253"),
    ]
    return Taxonomy("onet", "29.2", ["major", "minor", "broad", "detailed", "onet"], codes)


def test_hierarchy_level_fns_uses_taxonomy_then_structure() -> None:
    fns = hierarchy_level_fns(_onet_taxonomy())
    assert list(fns) == ["major", "minor", "broad", "detailed", "onet"]
    assert fns["broad"]("15-1253.00") == "15-1250"
    assert fns["minor"]("15-1252.00") == "15-1200"
    # not in the taxonomy: structural fallback
    assert fns["major"]("11-1011.00") == "11-0000"
    assert fns["detailed"]("11-1011.00") == "11-1011"
    assert fns["onet"]("") is None


def test_hierarchy_level_fns_positional_fallback_for_other_level_names() -> None:
    codes = [
        Code("2", "Professionals", 1, "L1"),
        Code("26", "Legal, social and cultural", 2, "L2", parent="2"),
        Code("265", "Creative and performing artists", 3, "L3", parent="26"),
        Code("2654", "Film, stage directors", 4, "L4", parent="265"),
    ]
    fns = hierarchy_level_fns(Taxonomy("isco", "08", ["L1", "L2", "L3", "L4"], codes))
    assert fns["L2"]("2654") == "26"
    assert fns["L2"]("3112") == "31"  # unknown code, positional ISCO fallback


# --- per class -------------------------------------------------------------------------------
def test_per_class_table() -> None:
    ranked = np.array([["a", "b"], ["b", "a"], ["b", "c"], ["c", "a"], ["b", "a"]], dtype=object)
    gold = [("a",), ("a",), ("a",), ("c",), ("b",)]
    conf = np.array([0.9, 0.6, 0.3, 0.8, np.nan])
    df = per_class_table(ranked, gold, conf, labels={"a": "Alpha"}, top_k=2)
    assert df["code"].tolist() == ["a", "b", "c"]  # by support, then code
    a = df.iloc[0]
    assert a["label"] == "Alpha"
    assert a["support"] == 3
    assert a["top1_accuracy"] == pytest.approx(1 / 3)
    assert a["top2_accuracy"] == pytest.approx(2 / 3)
    assert a["mean_confidence"] == pytest.approx(0.6)
    assert a["most_confused_with"] == "b"
    assert a["n_confused"] == 2
    b = df.iloc[1]
    assert math.isnan(b["mean_confidence"])
    assert b["most_confused_with"] == ""


# --- confidence ------------------------------------------------------------------------------
def test_coverage_precision_curve_hand_computed() -> None:
    conf = np.array([0.95, 0.9, 0.7, 0.5, 0.2])
    correct = np.array([True, True, False, True, False])
    df = coverage_precision_curve(conf, correct, thresholds=[0.8, 0.0, 0.6, 0.99])
    assert df["threshold"].tolist() == [0.0, 0.6, 0.8, 0.99]
    assert df["n"].tolist() == [5, 3, 2, 0]
    assert df["coverage"].tolist() == pytest.approx([1.0, 0.6, 0.4, 0.0])
    assert df["precision"].iloc[:3].tolist() == pytest.approx([0.6, 2 / 3, 1.0])
    assert math.isnan(df["precision"].iloc[3])


def test_coverage_is_monotonic_in_threshold() -> None:
    rng = np.random.default_rng(0)
    conf = rng.uniform(size=200)
    correct = rng.uniform(size=200) < conf
    df = coverage_precision_curve(conf, correct, thresholds=np.linspace(0, 1, 21).tolist())
    assert (np.diff(df["coverage"].to_numpy()) <= 0).all()
    assert (np.diff(df["n"].to_numpy()) <= 0).all()
    assert df["coverage"].iloc[0] == 1.0


def test_ece_perfectly_calibrated_vs_overconfident() -> None:
    # 10 rows at 0.8 with 8 right, 10 at 0.3 with 3 right: perfectly calibrated
    conf = np.array([0.8] * 10 + [0.3] * 10)
    correct = np.array([True] * 8 + [False] * 2 + [True] * 3 + [False] * 7)
    assert expected_calibration_error(conf, correct, n_bins=10) == pytest.approx(0.0)
    # overconfident: 0.95 but half right
    conf2 = np.full(20, 0.95)
    correct2 = np.array([True, False] * 10)
    assert expected_calibration_error(conf2, correct2, n_bins=10) == pytest.approx(0.45)


def test_ece_weights_bins_by_count() -> None:
    conf = np.array([0.9, 0.9, 0.9, 0.1])
    correct = np.array([True, True, True, True])
    # bin 0.9: gap 0.1 (3 rows); bin 0.1: gap 0.9 (1 row) -> (0.3 + 0.9) / 4
    assert expected_calibration_error(conf, correct, n_bins=10) == pytest.approx(0.3)


def test_reliability_table() -> None:
    conf = np.array([0.0, 0.05, 0.55, 1.0])
    correct = np.array([False, True, True, True])
    df = reliability_table(conf, correct, n_bins=4)
    assert df["count"].tolist() == [2, 0, 1, 1]  # 1.0 goes in the last bin
    assert df["accuracy"].iloc[0] == pytest.approx(0.5)
    assert df["mean_confidence"].iloc[0] == pytest.approx(0.025)
    assert math.isnan(df["accuracy"].iloc[1])
    with pytest.raises(ValueError, match=r"outside|\[0, 1\]"):
        reliability_table(np.array([1.2]), np.array([True]))


# --- evaluate ---------------------------------------------------------------------------------
def _gold() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": ["1", "2", "3", "4", "5", "6"],
            "codes": [
                "11-1011.00",
                "15-1252.00; 15-1253.00",
                "29-1141.00",
                "11-1011.00",
                "15-1252.00",
                "41-2031.00",
            ],
        }
    )


def _pred() -> pd.DataFrame:
    # id 6 missing; id 5 is an error row (its codes must not count); id 99 not in gold
    return pd.DataFrame(
        {
            "id": ["1", "2", "3", "4", "5", "99"],
            "code_1": ["11-1011.00", "15-1253.00", "29-1171.00", "11-1021.00", "15-1252.00", "x"],
            "code_2": ["11-1021.00", "15-1252.00", "29-1141.00", "11-1011.00", "", "y"],
            "label_1": ["Chief Executives", "QA", "NP", "GM", "", ""],
            "label_2": ["GM", "SD", "RN", "CE", "", ""],
            "score_1": [0.9, 0.8, 0.6, 0.4, None, 0.5],
            "score_2": [0.1, 0.2, 0.3, 0.3, None, 0.4],
            "confidence": [0.9, 0.8, 0.6, 0.4, None, 0.5],
            "status": ["coded", "coded", "review", "review", "error:llm timeout", "coded"],
        }
    )


def test_evaluate_counts_missing_and_error_rows_as_wrong() -> None:
    res = evaluate(_gold(), _pred(), top_ks=(1, 2, 5))
    m = res.metrics
    assert res.n == 6 and res.n_missing == 1 and res.n_error == 1
    assert res.missing_ids == ["6"]
    assert m["n_extra_pred"] == 1
    assert res.status_counts == {"coded": 2, "review": 2, "error": 1, "missing": 1}
    assert m["error_reasons"] == {"llm timeout": 1}
    assert m["top1_accuracy"] == pytest.approx(2 / 6)  # ids 1 and 2
    assert m["top2_accuracy"] == pytest.approx(4 / 6)  # + ids 3 and 4
    assert "top5_accuracy" not in m  # only 2 ranked codes
    assert m["mrr"] == pytest.approx((1 + 1 + 0.5 + 0.5) / 6)
    assert m["answered_top1_accuracy"] == pytest.approx(2 / 4)
    assert m["coded_top1_accuracy"] == pytest.approx(1.0)
    assert m["review_top1_accuracy"] == pytest.approx(0.0)
    # classes: 11-1011.00 (rows 1, 4: 1/2), 15-1252.00 (rows 2, 5: 1/2), 29-1141.00 (0), 41-2031.00 (0)
    assert m["macro_accuracy"] == pytest.approx((0.5 + 0.5 + 0 + 0) / 4)
    assert m["scheme"] == "onet"
    # major: rows 1, 2, 3, 4 right -> 4/6; exact onet level = top-1
    assert m["level_accuracy"]["major"] == pytest.approx(4 / 6)
    assert m["level_accuracy"]["minor"] == pytest.approx(4 / 6)
    assert m["level_accuracy"]["detailed"] == pytest.approx(2 / 6)
    assert m["level_accuracy"]["onet"] == pytest.approx(m["top1_accuracy"])
    cp = res.curve.set_index("threshold")
    assert cp.loc[0.0, "coverage"] == pytest.approx(1.0)  # missing/error rows have conf 0
    assert cp.loc[0.7, "n"] == 2 and cp.loc[0.7, "precision"] == pytest.approx(1.0)
    assert res.reliability["count"].sum() == 4  # answered rows only
    assert res.per_class.set_index("code").loc["11-1011.00", "label"] == "Chief Executives"
    row5 = res.rows.set_index("id").loc["5"]
    assert row5["status"] == "error" and not row5["correct"]


def test_evaluate_with_taxonomy_labels_and_levels() -> None:
    gold = pd.DataFrame({"id": ["a", "b"], "codes": ["15-1252.00", "15-1253.00"]})
    pred = pd.DataFrame(
        {"id": ["a", "b"], "code_1": ["15-1253.00", "15-1253.00"], "confidence": [0.5, 0.7]}
    )
    res = evaluate(gold, pred, taxonomy=_onet_taxonomy())
    assert res.levels["level"].tolist() == ["major", "minor", "broad", "detailed", "onet"]
    assert res.metrics["level_accuracy"]["broad"] == pytest.approx(1.0)
    assert res.metrics["level_accuracy"]["detailed"] == pytest.approx(0.5)
    assert res.metrics["n_gold_codes_not_in_taxonomy"] == 0
    assert res.per_class.set_index("code").loc["15-1252.00", "label"] == "Software Developers"
    assert res.status_counts["coded"] == 2  # no status column -> coded


def test_evaluate_conformal_sets() -> None:
    gold = pd.DataFrame({"id": ["1", "2", "3", "4"], "codes": ["a", "b", "c", "d"]})
    pred = pd.DataFrame(
        {
            "id": ["1", "2", "3", "4"],
            "code_1": ["a", "x", "x", ""],
            "confidence": [0.9, 0.5, 0.4, None],
            "status": ["coded", "review", "review", "error:no candidates"],
            "set_codes": ["a", "x;b", "x;y;z", ""],
            "set_size": [1, 2, 3, 0],
        }
    )
    m = evaluate(gold, pred).metrics
    assert m["set_coverage"] == pytest.approx(2 / 3)  # answered rows only
    assert m["mean_set_size"] == pytest.approx(2.0)
    assert m["empty_set_share"] == 0.0


def test_evaluate_validates_inputs() -> None:
    bad = _pred().drop(columns=["code_1"])
    with pytest.raises(ValueError, match="pred is missing column 'code_1'"):
        evaluate(_gold(), bad)


# --- report -----------------------------------------------------------------------------------
def test_write_report_files_and_pngs(tmp_path) -> None:
    res = evaluate(_gold(), _pred())
    paths = write_report(res, tmp_path / "report")
    for key in (
        "metrics",
        "report",
        "per_class",
        "rows",
        "coverage_precision",
        "reliability",
        "level_accuracy",
        "confidence_hist",
    ):
        assert paths[key].is_file(), key
        assert paths[key].stat().st_size > 0, key
    for key in ("coverage_precision", "reliability", "level_accuracy", "confidence_hist"):
        assert paths[key].read_bytes()[:8] == PNG_MAGIC, key
    metrics = json.loads(paths["metrics"].read_text())  # strict JSON: NaN written as null
    assert metrics["top1_accuracy"] == pytest.approx(res.metrics["top1_accuracy"])
    assert metrics["n_missing"] == 1
    md = paths["report"].read_text()
    for heading in (
        "## Headline metrics",
        "## Accuracy per hierarchy level",
        "## Coverage and precision by confidence threshold",
        "## Worst classes",
    ):
        assert heading in md
    assert "`6`" in md  # missing id listed
    assert "![reliability](reliability.png)" in md
    per_class = pd.read_csv(paths["per_class"], dtype={"code": str})
    assert set(per_class["code"]) == {"11-1011.00", "15-1252.00", "29-1141.00", "41-2031.00"}


def test_write_report_does_not_change_pyplot_backend(tmp_path) -> None:
    import matplotlib

    before = matplotlib.get_backend()
    write_report(evaluate(_gold(), _pred()), tmp_path)
    assert matplotlib.get_backend() == before


@pytest.mark.parametrize("ext", ["csv", "jsonl", "parquet"])
def test_run_eval_reads_files_keeping_ids_and_codes_as_text(tmp_path, ext) -> None:
    gold = pd.DataFrame({"id": ["007", "010"], "codes": ["0110", "2654"]})
    pred = pd.DataFrame(
        {
            "id": ["007", "010"],
            "code_1": ["0110", "2653"],
            "code_2": ["0210", "2654"],
            "confidence": [0.9, 0.4],
            "status": ["coded", "review"],
        }
    )
    gp, pp = tmp_path / f"gold.{ext}", tmp_path / f"pred.{ext}"
    for df, p in ((gold, gp), (pred, pp)):
        if ext == "csv":
            df.to_csv(p, index=False)
        elif ext == "jsonl":
            df.to_json(p, orient="records", lines=True)
        else:
            df.to_parquet(p, index=False)
    res = run_eval(gp, pp, tmp_path / "out")
    assert res.n_missing == 0  # "007" stays "007"
    assert res.metrics["top1_accuracy"] == pytest.approx(0.5)
    assert res.metrics["scheme"] == "isco"
    assert res.metrics["level_accuracy"]["unit"] == pytest.approx(0.5)
    assert (tmp_path / "out" / "report.md").is_file()


def test_report_rows_csv_is_safe_to_open_in_a_spreadsheet(tmp_path) -> None:
    ids = ['=HYPERLINK("http://x","y")', "@SUM(1+1)", "-3"]
    gold = pd.DataFrame({"id": ids, "codes": ["11-1011.00"] * 3})
    pred = pd.DataFrame(
        {"id": ids, "code_1": ["11-1011.00"] * 3, "score_1": [0.9] * 3, "status": ["coded"] * 3}
    )
    gold.to_csv(tmp_path / "g.csv", index=False)
    pred.to_csv(tmp_path / "p.csv", index=False)
    res = run_eval(tmp_path / "g.csv", tmp_path / "p.csv", tmp_path / "out")
    assert res.n_missing == 0
    rows = (tmp_path / "out" / "rows.csv").read_text().splitlines()
    assert not any(line.startswith(("=", "+", "@")) for line in rows)
    back = pd.read_csv(tmp_path / "out" / "rows.csv", dtype=str)
    assert back["id"].tolist() == ["'" + ids[0], "'" + ids[1], "-3"]
    run_eval(tmp_path / "g.csv", tmp_path / "p.csv", tmp_path / "raw", formula_guard=False)
    raw = pd.read_csv(tmp_path / "raw" / "rows.csv", dtype=str)
    assert raw["id"].tolist() == ids
