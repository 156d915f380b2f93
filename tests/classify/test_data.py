from __future__ import annotations

from collections import Counter

import pandas as pd
import pytest

from autocoder.classify import data as D
from autocoder.records import JobRecord
from autocoder.taxonomy.model import Code, Taxonomy


def _taxonomy() -> Taxonomy:
    codes = [
        Code("11", "Managers", 1, "major"),
        Code(
            "11-1",
            "Chief Executives",
            2,
            "detail",
            parent="11",
            description="Plan things.",
            alt_titles=["CEO", "Chief Executive Officer", "President"],
            reported_titles=["Managing Director"],
            tasks=["Direct the company.", "Set budgets."],
        ),
        Code(
            "11-2",
            "Marketing Managers",
            2,
            "detail",
            parent="11",
            description="Market things.",
            alt_titles=["Brand Manager"],
            tasks=["Plan campaigns."],
        ),
        Code("11-3", "Lonely Code", 2, "detail", parent="11"),
    ]
    return Taxonomy("toy", "1", ["major", "detail"], codes)


def test_taxonomy_rows_formats_and_provenance() -> None:
    rows = D.taxonomy_rows(_taxonomy(), title_duties_pairs=1)
    by = Counter((r["code"], r["provenance"]) for r in rows)
    assert by[("11-1", "taxonomy:alt_title")] == 3
    assert by[("11-1", "taxonomy:task")] == 2
    assert by[("11-1", "taxonomy:title+duties")] == 1
    assert by[("11-3", "taxonomy:title")] == 1
    for r in rows:
        assert r["input_format"] in ("title", "duties", "title_duties")
        assert r["text"] == JobRecord(r["title"], r["duties"]).text(r["input_format"])
    combo = next(
        r for r in rows if r["provenance"] == "taxonomy:title+duties" and r["code"] == "11-1"
    )
    assert combo["text"] == "job_title=Chief Executives job_duties=Plan things."
    assert not any(r["code"] == "11" for r in rows)  # only leaves


def test_table_rows_synthetic_and_errors() -> None:
    df = pd.DataFrame(
        [
            {
                "code": "11-1",
                "title": "Boss",
                "duties": "",
                "source": "synthetic",
                "prompt_version": "v2",
                "model": "gemma",
            },
            {
                "code": "11-2",
                "title": "",
                "duties": "Run ads",
                "source": "labeled",
                "prompt_version": "",
                "model": "",
            },
        ]
    )
    rows = D.table_rows(df, provenance="labeled:x", classes=["11-1", "11-2"])
    assert rows[0]["provenance"] == "synthetic:gemma:v2"
    assert rows[1]["provenance"] == "labeled:x" and rows[1]["text"] == "job_duties=Run ads"
    with pytest.raises(ValueError, match=r"row 1 .*'99-9'"):
        D.table_rows(
            pd.DataFrame([{"code": "99-9", "title": "X"}]), provenance="l", classes=["11-1"]
        )
    with pytest.raises(ValueError, match="row 1 .*no title or duties"):
        D.table_rows(pd.DataFrame([{"code": "11-1", "title": ""}]), provenance="l")


def test_split_keeps_singletons_in_train_and_is_stratified() -> None:
    rows = [D._row(JobRecord(f"t{c}-{i}"), f"c{c}", "test") for c in range(5) for i in range(20)]
    rows.append(D._row(JobRecord("only one"), "single", "test"))
    ds = D.build_dataset(rows)
    splits = D.stratified_split(ds, val_fraction=0.25, seed=0)
    train_codes = Counter(splits["train"]["code"])
    val_codes = Counter(splits["validation"]["code"])
    assert train_codes["single"] == 1 and val_codes["single"] == 0
    assert len(splits["train"]) + len(splits["validation"]) == len(ds)
    assert set(val_codes) == {f"c{c}" for c in range(5)}
    assert all(3 <= n <= 7 for n in val_codes.values())
    assert not set(splits["train"]["text"]) & set(splits["validation"]["text"])


def test_split_val_formats_only() -> None:
    rows = [D._row(JobRecord(f"title {i}"), "c", "t") for i in range(10)]
    rows += [D._row(JobRecord("", f"task {i}"), "c", "t") for i in range(10)]
    splits = D.stratified_split(D.build_dataset(rows), val_fraction=0.5, val_formats=["title"])
    assert set(splits["validation"]["input_format"]) == {"title"}
    assert len(splits["validation"]) == 5


def test_stratified_indices_is_the_split_of_datasets_and_arrays() -> None:
    labels = [3, 1, 3, 3, 2, 1, 3, 1, 2, 3, 7]
    train, val = D.stratified_indices(labels, val_fraction=0.4, seed=2)
    assert sorted(train + val) == list(range(len(labels))) and train == sorted(train)
    assert 10 in train  # label 7 has one row: it stays in train
    eligible = [i % 2 == 0 for i in range(len(labels))]
    _, val = D.stratified_indices(labels, val_fraction=0.9, seed=0, eligible=eligible)
    assert val and all(eligible[i] for i in val)
    with pytest.raises(ValueError, match="val_fraction"):
        D.stratified_indices(labels, val_fraction=1.0)
    # the dataset split is this function applied to the code column
    rows = [D._row(JobRecord(f"t{c}-{i}"), f"c{c}", "test") for c in range(4) for i in range(9)]
    ds = D.build_dataset(rows)
    _, val = D.stratified_indices(list(ds["code"]), val_fraction=0.3, seed=5)
    split = D.stratified_split(ds, val_fraction=0.3, seed=5)
    assert list(split["validation"]["text"]) == [ds["text"][i] for i in val]


def test_resample_over_and_under() -> None:
    rows = [D._row(JobRecord(f"a{i}"), "a", "t") for i in range(50)]
    rows += [D._row(JobRecord(f"b{i}"), "b", "t") for i in range(2)]
    out = D.resample(D.build_dataset(rows), min_per_class=10, max_per_class=20, seed=0)
    counts = Counter(out["code"])
    assert counts == {"a": 20, "b": 10}


def test_save_load_and_fingerprint(tmp_path) -> None:
    ds = D.build_dataset(D.taxonomy_rows(_taxonomy()))
    splits = D.stratified_split(ds, val_fraction=0.3, seed=1)
    path = D.save_training_data(splits, tmp_path / "data", meta={"recipe": "toy"})
    back = D.load_training_data(path)
    assert D.fingerprint(back["train"]) == D.fingerprint(splits["train"])
    assert back["train"].column_names == D.COLUMNS
    import json

    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["recipe"] == "toy" and manifest["splits"]["train"]["rows"] == len(
        splits["train"]
    )


def test_parse_mom() -> None:
    assert D.parse_mom("job_title=Nurse job_duties=Care for x") == JobRecord("Nurse", "Care for x")
    assert D.parse_mom("job_title=Nurse") == JobRecord("Nurse")
    assert D.parse_mom("job_duties=Cook food") == JobRecord("", "Cook food")
    assert D.parse_mom("Nurse") is None


def test_build_dataset_lists_every_code_of_a_shared_title() -> None:
    rows = [
        D._row(JobRecord("Analyst"), "a", "t"),
        D._row(JobRecord("analyst"), "b", "t"),
        D._row(JobRecord("Clerk"), "a", "t"),
    ]
    ds = D.build_dataset(rows)
    assert D.acceptable_codes(ds) == [["a", "b"], ["a", "b"], ["a"]]


def _store_table(rows: list[dict]) -> pd.DataFrame:
    base = {"source": "wave1", "annotator": "import", "weight": 1.0, "description": ""}
    return pd.DataFrame([{**base, **r} for r in rows])


def test_example_rows_are_weighted_and_count_what_they_leave_out() -> None:
    table = _store_table(
        [
            {"title": "Staff Nurse", "code": "11-1", "weight": 2.0},
            {"title": "Staff Nurse", "code": "11-1", "source": "review:p", "annotator": "b"},
            {"title": "Staff Nurse", "code": "11-2", "source": "review:p", "annotator": "c"},
            {"title": "Sous chef", "description": "Cooks sauces.", "code": "11-2"},
            {"title": "Dev. Title", "code": "11-1"},  # a dev title, punctuation aside
            {"title": "Astronaut", "code": "99-9"},
            {"title": "Moon miner", "code": "99-9"},
            {"title": "", "code": "11-1"},
        ]
    )
    found = D.example_rows(table, classes=["11-1", "11-2"], weight=1.5, holdout={"dev title"})
    rows = {(r["title"], r["code"]): r for r in found.rows}
    nurse = rows[("Staff Nurse", "11-1")]
    assert nurse["weight"] == 4.5  # (2 + 1) x 1.5: the two votes for one code add up
    assert nurse["provenance"] == "examples:wave1" and nurse["input_format"] == "title"
    assert rows[("Staff Nurse", "11-2")]["provenance"] == "examples:review:p"
    chef = next(r for r in found.rows if r["title"] == "Sous chef")
    assert chef["input_format"] == "title_duties" and chef["duties"] == "Cooks sauces."
    summary = found.summary()
    assert {k: summary[k] for k in ("stored", "rows", "held_out", "unknown_code", "merged")} == {
        "stored": 8,
        "rows": 3,
        "held_out": 1,
        "unknown_code": 2,
        "merged": 1,
    }
    assert summary["unknown_codes"] == ["99-9"] and summary["empty"] == 1
    assert summary["provenance"] == {"examples:review:p": 1, "examples:wave1": 2}
    assert summary["weight"] == 1.5
    assert list(found.weights()) == [r["weight"] for r in found.rows]
    assert found.codes() == [r["code"] for r in found.rows]


def test_example_rows_in_a_dataset_are_counted_and_can_be_taken_out() -> None:
    from datasets import DatasetDict

    rows = D.taxonomy_rows(_taxonomy(), title_duties_pairs=0)
    examples = D.example_rows(
        _store_table([{"title": "Big boss", "code": "11-1", "weight": 3.0}]), classes=["11-1"]
    )
    full = D.build_dataset(rows + examples.rows)
    splits = DatasetDict(train=full, validation=full.select([0]))
    assert D.example_counts(splits) == {"train": 1, "validation": 0}
    assert D.row_weights(full) is not None and 3.0 in list(full["weight"])
    kept = D.without_examples(splits)
    assert D.example_counts(kept) == {"train": 0, "validation": 0}
    assert len(kept["train"]) == len(full) - 1 and len(kept["validation"]) == 1


def test_untrained_example_keys_are_validation_example_titles_no_train_row_shares() -> None:
    from datasets import Dataset, DatasetDict

    from autocoder.classify.data import untrained_example_keys
    from autocoder.examples.store import example_key, key_digest

    def split(rows: list[tuple[str, str]]) -> Dataset:
        return Dataset.from_dict(
            {"title": [t for t, _ in rows], "provenance": [p for _, p in rows]}
        )

    splits = DatasetDict(
        {
            "train": split([("Cake Decorator", "examples:h"), ("Baker", "taxonomy:title")]),
            "validation": split(
                [
                    ("cake  decorator!", "examples:h"),  # the same normalised title as train
                    ("Pastry Chef", "examples:h"),
                    ("baker", "examples:review:p"),  # trained on as a taxonomy title
                    ("Sous Chef", "taxonomy:title"),  # not an example
                ]
            ),
        }
    )
    assert untrained_example_keys(splits) == [key_digest(example_key("Pastry Chef"))]
    # titles trained on elsewhere (the labels a codes-objective embedder saw) are not untrained
    assert untrained_example_keys(splits, also_trained=["Pastry  chef"]) == []
    assert D.still_untrained([key_digest("a b"), key_digest("c")], ["A-B"]) == [key_digest("c")]
