"""The Gemma paraphraser: pairs, recipe, filter, balancing (fast) and the tiny recipe end to end
with the real converted Gemma 3 270M, trl and peft (slow)."""

import json
import math
import random
import shutil
from collections import Counter

import pandas as pd
import pytest
from typer.testing import CliRunner

from autocoder.augment.paraphrase import (
    PARAPHRASE_COLUMNS,
    PairsSection,
    ParaphraserError,
    _sample_pairs,
    build_pairs,
    completion_loss,
    load_paraphraser_recipe,
    paraphrase_table,
    prompt_text,
    task_groups,
)
from autocoder.classify.data import paraphrase_rows
from autocoder.coding.loaded import LoadedCoder
from autocoder.llm.prompts import load_prompt
from autocoder.taxonomy.model import Code, Taxonomy
from tests.fakes import KeywordPredictor

DWA_HEADER = "O*NET-SOC Code\tTitle\tTask ID\tTask\tDWA ID\tDWA Title\tDate\tDomain Source\n"
NURSE_TASKS = [
    "Monitor patients and record vital signs.",
    "Observe patients' condition and chart changes.",
    "Administer medications to patients.",
    "Give prescribed drugs to patients.",
]


def taxonomy(source: str = "") -> Taxonomy:
    leaves = [
        Code(
            "29-1141.00",
            "Registered Nurses",
            2,
            "occupation",
            parent="29-0000",
            alt_titles=["Staff Nurse", "RN", "Charge Nurse"],
            tasks=NURSE_TASKS,
        ),
        Code(
            "41-2031.00",
            "Retail Salespersons",
            2,
            "occupation",
            parent="41-0000",
            alt_titles=["Sales Associate", "Shop Assistant"],
            tasks=["Greet customers in the store.", "Process sales at the register."],
        ),
        Code(
            "15-1252.00",
            "Software Developers",
            2,
            "occupation",
            parent="15-0000",
            alt_titles=["Software Engineer"],
            tasks=["Write program code."],
        ),
    ]
    groups = [Code(c, c, 1, "major") for c in ("15-0000", "29-0000", "41-0000")]
    return Taxonomy("onet", "t", ["major", "occupation"], groups + leaves, source=source)


def dwa_release(tmp_path):
    """A release folder whose Tasks to DWAs.txt links the nurse tasks in two activities."""
    rows = [
        ("29-1141.00", NURSE_TASKS[0], "4.A.1"),
        ("29-1141.00", NURSE_TASKS[1], "4.A.1"),
        ("29-1141.00", NURSE_TASKS[2], "4.A.2"),
        ("29-1141.00", NURSE_TASKS[3], "4.A.2"),
        ("41-2031.00", "Greet customers in the store.", "4.B.1"),
        ("41-2031.00", "Process sales at the register.", "4.B.2"),
    ]
    text = DWA_HEADER + "".join(
        f"{code}\tX\t{i}\t{task}\t{dwa}\tactivity\t07/2014\tAnalyst\n"
        for i, (code, task, dwa) in enumerate(rows)
    )
    release = tmp_path / "release"
    release.mkdir()
    (release / "Tasks to DWAs.txt").write_text(text)
    return release


def test_sample_pairs_are_distinct_ordered_pairs_within_groups():
    groups = [["a", "b", "c"], ["x", "y"], ["lonely"]]
    pairs = _sample_pairs(groups, 100, random.Random(0))
    assert len(pairs) == 3 * 2 + 2 * 1
    assert len(set(pairs)) == len(pairs)
    assert all(a != b for a, b in pairs)
    assert all(any(a in g and b in g for g in groups) for a, b in pairs)
    assert len(_sample_pairs(groups, 3, random.Random(0))) == 3


def test_duties_pairs_share_a_detailed_work_activity(tmp_path):
    tax = taxonomy(str(dwa_release(tmp_path)))
    groups, links = task_groups(tax, "dwa")
    assert links == "dwa"
    assert sorted(map(sorted, groups["29-1141.00"])) == sorted(
        [sorted(NURSE_TASKS[:2]), sorted(NURSE_TASKS[2:])]
    )
    assert groups["41-2031.00"] == []  # its two tasks belong to different activities
    data = PairsSection(kinds=["duties"], duties_pairs_per_code=10, heldout_code_fraction=0)
    pairs = build_pairs(tax, data).train
    assert len(pairs) == 4
    linked = [set(NURSE_TASKS[:2]), set(NURSE_TASKS[2:])]
    assert all({p.source, p.target} in linked for p in pairs)


def test_without_the_release_duties_pairs_fall_back_to_same_code_tasks():
    groups, links = task_groups(taxonomy(""), "dwa")
    assert links == "code"
    assert groups["41-2031.00"] == [
        ["Greet customers in the store.", "Process sales at the register."]
    ]


def test_pairs_are_held_out_by_code():
    data = PairsSection(
        title_pairs_per_code=20,
        duties_pairs_per_code=20,
        task_links="code",
        heldout_code_fraction=0.3,
        seed=1,
    )
    pairs = build_pairs(taxonomy(), data)
    held = set(pairs.heldout_codes)
    assert len(held) == 1
    assert {p.code for p in pairs.heldout} == held
    assert not held & {p.code for p in pairs.train}
    titles = {"Registered Nurses", "Staff Nurse", "RN", "Charge Nurse"}
    for p in pairs.train + pairs.heldout:
        assert p.source != p.target
        if p.kind == "title" and p.code == "29-1141.00":
            assert {p.source, p.target} <= titles
    assert pairs.counts == dict(Counter(p.kind for p in pairs.train))


def test_recipes_load_and_bad_recipes_are_reported(tmp_path):
    default = load_paraphraser_recipe()
    assert default.data.task_links == "dwa" and default.train.max_steps > 0
    tiny = load_paraphraser_recipe(
        default_recipe_path_sibling := (default_recipe_path().parent / "paraphraser-tiny.toml")
    )
    assert default_recipe_path_sibling.exists()
    assert tiny.train.max_steps < 20
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nmax_stepz = 3\n")
    with pytest.raises(ParaphraserError, match="max_stepz"):
        load_paraphraser_recipe(bad)
    with pytest.raises(ParaphraserError, match="not found"):
        load_paraphraser_recipe(tmp_path / "missing.toml")


def default_recipe_path():
    from autocoder.augment.paraphrase import default_recipe_path as path

    return path()


def test_prompt_is_plain_text_with_the_kind_and_text():
    text = prompt_text(load_prompt("paraphrase", "v1"), "duties", "Clean teeth.")
    assert text.endswith("Original: Clean teeth.\nParaphrase:")
    assert "job duty statement" in text
    with pytest.raises(ParaphraserError, match="kind"):
        prompt_text(load_prompt("paraphrase", "v1"), "skills", "x")


class ScriptedParaphraser:
    """Returns fixed samples per input text (a fake for the generation step only)."""

    name = "fake:gemma"
    recipe_name = "fake-recipe"

    def __init__(self, samples):
        self.samples = samples
        self.calls = []

    def generate(self, texts, kind, k, *, seed=0):
        self.calls.append((kind, list(texts), k, seed))
        return [self.samples[t][:k] for t in texts]


SAMPLES = {
    "Charge Nurse": ["Ward Nurse", "charge nurse", "Staff Nurse", "Sales Nurse", "Ward Nurse"],
    "Give prescribed drugs to patients.": [
        "Hand out the prescribed medicine to patients.",
        "Greet customers in the store.",
        "",
        "Sell drugs to customers.",
        "Hand out the prescribed medicine to patients!",
    ],
}
KEYWORDS = {
    "sales": "41-2031.00",
    "sell": "41-2031.00",
    "nurse": "29-1141.00",
    "patient": "29-1141.00",
    "code": "15-1252.00",
}


def test_filter_drops_copies_known_texts_and_label_changes():
    df = pd.DataFrame(
        {
            "id": ["r1"],
            "title": ["Charge Nurse"],
            "duties": ["Give prescribed drugs to patients."],
            "code": ["29-1141.00"],
        }
    )
    fake = ScriptedParaphraser(SAMPLES)
    out, stats = paraphrase_table(
        df,
        fake,
        per_record=5,
        seed=7,
        coder=LoadedCoder.from_predictor(KeywordPredictor(KEYWORDS), taxonomy=taxonomy()),
    )
    assert list(out.columns) == PARAPHRASE_COLUMNS
    assert out["paraphrase"].tolist() == [
        "Ward Nurse",
        "Hand out the prescribed medicine to patients.",
    ]
    assert out["kind"].tolist() == ["title", "duties"]
    assert set(out["code"]) == {"29-1141.00"} and set(out["seed"]) == {7}
    assert set(out["model"]) == {"fake:gemma"} and set(out["recipe"]) == {"fake-recipe"}
    # copies: "charge nurse" (input), "Staff Nurse" (known title), "Greet customers…" (known
    # task), repeats of samples (case/punctuation ignored); label changes: Sales Nurse, Sell…
    assert stats == {
        "records": 1,
        "texts": 2,
        "generated": 10,
        "dropped_copies": 5,
        "dropped_empty": 1,
        "dropped_label_changed": 2,
        "kept": 2,
    }


def test_no_filter_keeps_raw_samples_and_unlabeled_records_take_the_coders_code():
    df = pd.DataFrame({"id": ["r1"], "title": ["Charge Nurse"]})
    fake = ScriptedParaphraser(SAMPLES)
    out, stats = paraphrase_table(
        df,
        fake,
        per_record=3,
        filter_outputs=False,
        coder=LoadedCoder.from_predictor(KeywordPredictor(KEYWORDS), taxonomy=taxonomy()),
    )
    assert out["paraphrase"].tolist() == SAMPLES["Charge Nurse"][:3]
    assert set(out["code"]) == {"29-1141.00"}  # predicted for the original
    assert stats["kept"] == 3 and fake.calls[0][2] == 3


def test_bad_input_names_the_record():
    fake = ScriptedParaphraser(SAMPLES)
    df = pd.DataFrame({"id": ["a", "b"], "title": ["Charge Nurse", " "], "code": ["x", "y"]})
    with pytest.raises(ValueError, match=r"row 2 \(id 'b'\) has no title or duties"):
        paraphrase_table(df, fake, per_record=1, filter_outputs=False, source="in.csv")
    with pytest.raises(ValueError, match="'id' column"):
        paraphrase_table(pd.DataFrame({"title": ["x"]}), fake, per_record=1, filter_outputs=False)
    with pytest.raises(ParaphraserError, match="coder"):
        paraphrase_table(df, fake, per_record=1)


def test_paraphrase_rows_top_up_rare_codes_only():
    table = pd.DataFrame(
        {
            "id": ["1", "1", "1", "2", "3"],
            "code": ["29-1141.00"] * 3 + ["41-2031.00", "15-1252.00"],
            "paraphrase": ["Ward Nurse", "Floor Nurse", "Night Nurse", "Shop Clerk", "Coder"],
            "kind": ["title", "title", "title", "title", "duties"],
        }
    )
    counts = Counter({"29-1141.00": 1, "41-2031.00": 5, "15-1252.00": 0})
    rows = paraphrase_rows(
        table, counts, min_per_code=3, classes=taxonomy().leaf_codes(), provenance="paraphrase:p"
    )
    assert [(r["code"], r["text"]) for r in rows] == [
        ("29-1141.00", "job_title=Ward Nurse"),
        ("29-1141.00", "job_title=Floor Nurse"),
        ("15-1252.00", "job_duties=Coder"),
    ]
    assert {r["provenance"] for r in rows} == {"paraphrase:p"}
    assert (
        len(
            paraphrase_rows(
                table, counts, min_per_code=0, classes=taxonomy().leaf_codes(), provenance="p"
            )
        )
        == 5
    )
    with pytest.raises(ValueError, match="not a leaf code"):
        paraphrase_rows(
            table.assign(code="99-9999.00"),
            counts,
            min_per_code=0,
            classes=taxonomy().leaf_codes(),
            provenance="p",
        )


def test_classifier_recipe_adds_paraphrases_for_rare_codes(tmp_path):
    from autocoder.classify.recipe import build_rows, load_recipe

    table = pd.DataFrame(
        {
            "id": ["1", "2"],
            "code": ["15-1252.00", "29-1141.00"],
            "paraphrase": ["Programmer", "Ward Nurse"],
            "kind": ["title", "title"],
        }
    )
    path = tmp_path / "para.csv"
    table.to_csv(path, index=False)
    overrides = {
        "data.paraphrases": [str(path)],
        "data.paraphrase_min_per_code": 8,
        "data.holdout": "none",
    }
    rows = build_rows(load_recipe(None, overrides), taxonomy())
    added = [r for r in rows if r["provenance"] == "paraphrase:para"]
    assert [r["text"] for r in added] == ["job_title=Programmer"]  # the nurse has >= 8 rows


def test_completion_loss_equals_the_models_own_loss_on_completion_tokens():
    """The LM head applied to completion positions only gives the full-logits loss."""
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(0)
    config = Gemma3TextConfig(
        vocab_size=97,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        max_position_embeddings=64,
        pad_token_id=0,
    )
    model = Gemma3ForCausalLM(config).eval()
    ids = torch.randint(1, 97, (3, 12))
    mask = torch.ones_like(ids)
    mask[2, :4] = 0  # left padding
    labels = ids.clone()
    labels[:, :7] = -100  # the prompt
    labels[1, 10:] = -100
    inputs = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    expected = model(**inputs).loss
    loss, correct, count = completion_loss(model, inputs)
    assert count == int((labels[:, 1:] != -100).sum()) == 13
    assert torch.allclose(loss, expected, atol=1e-5)
    with torch.no_grad():  # next-token accuracy on the completion tokens, computed directly
        predicted = model(**inputs).logits[:, :-1].argmax(-1)
    target = labels[:, 1:]
    assert correct == int(((predicted == target) & (target != -100)).sum())
    halved, _, _ = completion_loss(model, inputs, num_items_in_batch=2 * count)
    assert torch.allclose(halved, expected / 2, atol=1e-5)
    model.config.final_logit_softcapping = 0.5  # softcapping, when a model has it, is applied
    capped, _, _ = completion_loss(model, inputs)
    assert torch.allclose(capped, model(**inputs).loss, atol=1e-5)


# --- end to end with the real model ---------------------------------------------------------
@pytest.mark.slow
def test_tiny_recipe_end_to_end(tmp_path, fixtures_dir, monkeypatch):
    """Convert the PyPI GGUF, train a few LoRA steps, paraphrase through the CLI."""
    from autocoder.cli import app

    release = tmp_path / "onet"
    shutil.copytree(fixtures_dir / "onet_mini", release)
    (release / "Tasks to DWAs.txt").write_text(
        DWA_HEADER
        + "11-1011.00\tChief Executives\t101\tDirect the organization's financial and budget "
        "activities.\t4.A.1\tDirect financial operations.\t07/2014\tAnalyst\n"
        "11-1011.00\tChief Executives\t102\tConfer with board members to resolve problems.\t"
        "4.A.1\tDirect financial operations.\t07/2014\tAnalyst\n"
    )
    monkeypatch.setenv("AUTOCODER_HOME", str(tmp_path / "ws"))
    runner = CliRunner()
    res = runner.invoke(app, ["taxonomy", "import", "onet", str(release)])
    assert res.exit_code == 0, res.output
    model_dir = tmp_path / "para"
    res = runner.invoke(
        app,
        [
            "paraphraser",
            "train",
            "--recipe",
            str(default_recipe_path().parent / "paraphraser-tiny.toml"),
            "--output",
            str(model_dir),
        ],
    )
    assert res.exit_code == 0, res.output
    meta = json.loads((model_dir / "paraphraser.json").read_text())
    assert meta["task_links"] == "dwa"
    duties = meta["train_pairs_by_kind"].get("duties", 0)
    assert duties + meta["heldout_pairs_by_kind"].get("duties", 0) == 1  # duties_pairs_per_code
    assert math.isfinite(meta["heldout_loss"]) and meta["heldout_loss"] > 0
    assert (model_dir / "adapter_model.safetensors").is_file()
    records = tmp_path / "in.csv"
    pd.DataFrame(
        {
            "id": ["a", "b"],
            "title": ["Chief Executive Officer", "Software Engineer"],
            "duties": ["", "Write and test code for new applications."],
            "code": ["11-1011.00", "15-1252.00"],
        }
    ).to_csv(records, index=False)
    res = runner.invoke(app, ["index", "build"])  # the filter's coder: retrieval over the index
    assert res.exit_code == 0, res.output
    for flag, expected in (["--no-filter"], 3 * 3), ([], None):
        out = tmp_path / f"out{len(flag)}.csv"
        res = runner.invoke(
            app,
            [
                "paraphrase",
                str(records),
                "-o",
                str(out),
                "--per-record",
                "3",
                "--model",
                str(model_dir),
                *flag,
            ],
        )
        assert res.exit_code == 0, res.output
        table = pd.read_csv(out, dtype=str, keep_default_na=False)
        assert list(table.columns) == PARAPHRASE_COLUMNS
        if expected:
            assert len(table) == expected
            assert set(table["kind"]) == {"title", "duties"}
            assert set(table["recipe"]) == {"gemma-paraphraser-tiny"}
        else:
            summary = json.loads(res.stdout)
            assert summary["generated"] == 9 and summary["kept"] == len(table)
