from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from autocoder.io import InputError, iter_table
from autocoder.skills.batch import extract_file
from autocoder.skills.data import GoldSentence, SkillCatalog
from autocoder.skills.extract import SkillExtractor, evaluate_extractor, r_precision_at_k

CATALOG = SkillCatalog(
    uris=["u:py", "u:sql", "u:team", "u:cook", "u:drive"],
    labels=["Python (computer programming)", "SQL", "lead a team", "cook meals", "drive vehicles"],
    alt_labels=[["Python"], ["structured query language"], ["team leadership"], [], ["driving"]],
    descriptions=["", "", "", "", ""],
    skill_types=[
        "knowledge",
        "knowledge",
        "skill/competence",
        "skill/competence",
        "skill/competence",
    ],
)


def test_r_precision_matches_the_definition() -> None:
    ranked = [["a", "b", "c"], ["x", "y", "z"], ["q"]]
    gold = [["a", "c"], ["z", "w", "v", "u"], []]
    # sentence 1: 2 of min(2, 2); sentence 2: 0 of min(2, 4); sentence 3 has no gold: skipped
    assert r_precision_at_k(ranked, gold, 2) == pytest.approx((1 / 2 + 0) / 2)
    assert r_precision_at_k(ranked, gold, 3) == pytest.approx((1 + 1 / 3) / 2)


def test_extractor_ranks_mentioned_skills_first_and_reports_the_span(bow) -> None:
    ex = SkillExtractor(bow, top_k=3).fit(CATALOG)
    hits = ex.rank_sentences(["You write SQL queries and lead a team of cooks"])[0]
    labels = [h.label for h in hits]
    assert labels[:2] == ["SQL", "lead a team"] or labels[:2] == ["lead a team", "SQL"]
    assert {h.span for h in hits[:2]} <= {"SQL", "lead a team", "SQL queries", ""}
    assert all(a.score >= b.score for a, b in zip(hits, hits[1:], strict=False))


def test_jaccard_matches_spelling_variants_the_embedding_misses(bow) -> None:
    sentence = ["Strong Pythons and drivings"]  # hashed words differ; char n-grams overlap
    without = SkillExtractor(bow, use_jaccard=False).fit(CATALOG).rank_sentences(sentence)[0]
    with_j = SkillExtractor(bow, use_jaccard=True).fit(CATALOG).rank_sentences(sentence)[0]
    assert without[0].score < 0.66
    assert {h.label for h in with_j[:2]} == {"Python (computer programming)", "drive vehicles"}
    assert with_j[0].score >= 0.66


def test_rank_merges_sentences_of_a_posting(bow) -> None:
    ex = SkillExtractor(bow, top_k=2).fit(CATALOG)
    hits = ex.rank(["We use SQL daily. You cook meals for the team."])[0]
    assert {h.label for h in hits} == {"SQL", "cook meals"}
    assert ex.rank([""]) == [[]]


def test_evaluate_extractor_scores_a_perfect_toy_set(bow) -> None:
    ex = SkillExtractor(bow).fit(CATALOG)
    gold = [GoldSentence("SQL", ["SQL"]), GoldSentence("cook meals", ["cook meals"])]
    assert evaluate_extractor(ex, gold) == {"rp@5": 1.0, "rp@10": 1.0, "sentences": 2}


def test_unfitted_extractor_raises(bow) -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        SkillExtractor(bow).rank_sentences(["x"])


def _input(tmp_path, rows) -> str:
    path = tmp_path / "in.csv"
    pd.DataFrame(rows, columns=["id", "text"]).to_csv(path, index=False)
    return str(path)


def test_extract_file_accounts_for_every_record(tmp_path, bow) -> None:
    ex = SkillExtractor(bow, top_k=2).fit(CATALOG)
    src = _input(
        tmp_path,
        [["1", "We need SQL."], ["2", ""], ["1", "duplicate"], ["", "no id"], ["3", "cook meals"]],
    )
    summary = extract_file(
        src,
        tmp_path / "out.csv",
        extractor=ex,
        runs_dir=tmp_path / "runs",
        top_k=2,
        batch_size=2,
        show_progress=False,
    )
    out = pd.read_csv(tmp_path / "out.csv", dtype={"id": str}, keep_default_na=False)
    assert sorted(set(out["row"])) == [0, 1, 2, 3, 4]
    per_record = out.drop_duplicates("row").set_index("row")["status"].to_dict()
    assert per_record == {
        0: "ok",
        1: "error:empty_text",
        2: "error:duplicate_id",
        3: "error:missing_id",
        4: "ok",
    }
    assert out[out["row"] == 0]["rank"].tolist() == [1, 2]
    assert out[out["row"] == 0]["skill_label"].iloc[0] == "SQL"
    assert summary.status == {
        "ok": 2,
        "error:empty_text": 1,
        "error:duplicate_id": 1,
        "error:missing_id": 1,
    }


def test_extract_file_resumes_without_duplicates_or_losses(tmp_path, bow) -> None:
    ex = SkillExtractor(bow, top_k=1, memo_size=0).fit(CATALOG)  # every batch encodes
    src = _input(tmp_path, [[str(i), "SQL and Python"] for i in range(7)])
    kwargs = dict(
        extractor=ex, runs_dir=tmp_path / "runs", top_k=1, batch_size=2, show_progress=False
    )

    class Interrupted:  # like Ctrl-C during the third batch
        def __init__(self) -> None:
            self.batches = 0

        def rank(self, texts, top_k=None):
            self.batches += 1
            if self.batches == 3:
                raise KeyboardInterrupt
            return ex.rank(texts, top_k=top_k)

    with pytest.raises(KeyboardInterrupt):
        extract_file(src, tmp_path / "out.parquet", **{**kwargs, "extractor": Interrupted()})
    assert not (tmp_path / "out.parquet").exists()
    calls = bow.calls
    done = extract_file(src, tmp_path / "out.parquet", **kwargs)
    assert done.resumed_batches == 2 and bow.calls - calls == 2  # only the 2 missing batches
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert out["row"].tolist() == list(range(7)) and set(out["status"]) == {"ok"}


def test_extract_file_streams_jsonl_in_batches_and_reports_bad_lines(
    tmp_path, bow, monkeypatch
) -> None:
    import autocoder.skills.batch as batch

    reads: list[int] = []

    def spy(path, *, chunk_rows, string_columns=("id",)):  # the coder's reader, recorded
        for chunk in iter_table(path, chunk_rows=chunk_rows, string_columns=string_columns):
            reads.append(len(chunk))
            yield chunk

    monkeypatch.setattr(batch, "iter_table", spy)
    src = tmp_path / "in.jsonl"
    lines = [json.dumps({"id": str(i), "text": "SQL and Python"}) for i in range(5)]
    lines[3] = "[1, 2]"  # not an object
    lines.append(json.dumps({"id": "9"}))  # a later batch whose line has no text key
    src.write_text("\n".join(lines) + "\n")
    ex = SkillExtractor(bow, top_k=1).fit(CATALOG)
    summary = extract_file(
        src, tmp_path / "o.parquet", extractor=ex, runs_dir=tmp_path / "r", top_k=1,
        batch_size=2, show_progress=False,
    )  # fmt: skip
    assert reads == [2, 2, 2]  # never the whole file at once
    out = pd.read_parquet(tmp_path / "o.parquet")
    status = out.set_index("row")["status"].to_dict()
    assert status[3].startswith("error:not_an_object: line 4")
    assert status[5] == "error:empty_text" and summary.records == 6
    assert summary.status == {"ok": 4, status[3]: 1, "error:empty_text": 1}


def test_extract_file_redoes_a_damaged_checkpoint(tmp_path, bow) -> None:
    ex = SkillExtractor(bow, top_k=1).fit(CATALOG)
    src = _input(tmp_path, [[str(i), "SQL"] for i in range(4)])
    kwargs = dict(extractor=ex, runs_dir=tmp_path / "r", top_k=1, batch_size=2, show_progress=False)
    first = extract_file(src, tmp_path / "a.csv", **kwargs)
    run_dir = Path(first.run_dir)
    pd.DataFrame({"row": [7], "id": ["x"]}).to_parquet(run_dir / "part-000001.parquet")
    again = extract_file(src, tmp_path / "b.csv", **kwargs)
    assert again.resumed_batches == 0 and again.status == {"ok": 4}
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()


def test_extract_file_flags_a_failing_batch_and_goes_on(tmp_path, bow) -> None:
    class Flaky:
        def __init__(self) -> None:
            self.n = 0

        def rank(self, texts, top_k=None):
            self.n += 1
            if self.n == 1:
                raise MemoryError("boom")
            return [[] for _ in texts]

    src = _input(tmp_path, [["a", "x y"], ["b", "x y"], ["c", "z"]])
    summary = extract_file(
        src,
        tmp_path / "o.csv",
        extractor=Flaky(),
        runs_dir=tmp_path / "r",
        batch_size=2,
        show_progress=False,
    )
    assert summary.status == {"error:extract_failed:MemoryError": 2, "error:no_sentences": 1}


def test_extract_file_names_a_missing_text_column(tmp_path, bow) -> None:
    path = tmp_path / "in.csv"
    pd.DataFrame({"id": ["1"], "body": ["SQL"]}).to_csv(path, index=False)
    with pytest.raises(InputError, match="no text column 'text'.*body"):
        extract_file(path, tmp_path / "o.csv", extractor=None, runs_dir=tmp_path / "r")


def test_catalog_fingerprint_changes_with_labels() -> None:
    other = SkillCatalog(
        CATALOG.uris, ["x", *CATALOG.labels[1:]], CATALOG.alt_labels, CATALOG.descriptions
    )
    assert other.fingerprint != CATALOG.fingerprint


def test_split_gold_is_deterministic_disjoint_and_order_free() -> None:
    from autocoder.skills.data import split_gold

    gold = [GoldSentence(f"sentence {i}", ["SQL"]) for i in range(200)]
    tuning, dev = split_gold(gold)
    again_t, again_d = split_gold(list(reversed(gold)))
    assert {g.sentence for g in tuning} == {g.sentence for g in again_t}
    assert not {g.sentence for g in tuning} & {g.sentence for g in dev}
    assert len(tuning) + len(dev) == 200 and 70 < len(dev) < 130
    other_t, _ = split_gold(gold, seed=1)
    assert {g.sentence for g in other_t} != {g.sentence for g in tuning}
    with pytest.raises(ValueError, match="dev_fraction"):
        split_gold(gold, dev_fraction=1.0)
