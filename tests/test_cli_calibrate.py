"""``autocoder calibrate`` through the CLI: a model trained on the O*NET fixture with a real
MiniLM, mixed with retrieval over embedded Chroma, gets a calibration that ``code`` then uses
(target precision, partial codes); bad tables and the packaged model are refused."""

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from autocoder.cli import app

pytestmark = pytest.mark.slow
runner = CliRunner()

RECIPE = """
name = "calibrate-test"
[data]
taxonomy = "onet"
holdout = "{dev}"
[finetune]
enabled = false
[model]
hidden = 32
[train]
epochs = 20
batch_size = 32
[combine]
retrieval_weight = 0.3
"""
DEV = "id,title,codes\nd1,Staff Nurse,29-1141.00\nd2,Company President,11-1011.00\n"
WORDS = {
    "11-1011.00": ["chief", "executive", "ceo", "president", "managing", "director"],
    "11-1011.03": ["sustainability", "officer", "esg", "green", "climate", "lead"],
    "15-1243.01": ["data", "warehouse", "etl", "specialist", "bi", "developer"],
    "15-1252.00": ["software", "developer", "python", "backend", "engineer", "web"],
    "29-1141.00": ["registered", "nurse", "rn", "ward", "icu", "staff"],
    "29-1221.00": ["pediatrician", "child", "doctor", "paediatric", "physician", "clinic"],
}
EMPLOYERS = ["hy-vee", "acme corp", "st. mary's", "uncommon schools", "walmart"]


def _run(args: list[str], code: int = 0) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == code, result.output
    return result.stdout if code == 0 else result.output


def _titles(n: int, seed: int) -> pd.DataFrame:
    """Posting-like titles: two words of a code (one of another code now and then) and an
    employer."""
    rng = np.random.default_rng(seed)
    codes = list(WORDS)
    rows = []
    for i in range(n):
        code = codes[i % len(codes)]
        words = list(rng.choice(WORDS[code], size=2, replace=False))
        if rng.random() < 0.3:
            words[1] = str(rng.choice(WORDS[codes[(i + 1) % len(codes)]]))
        rows.append((f"t{i}", f"{' '.join(words)}, {rng.choice(EMPLOYERS)}", code))
    return pd.DataFrame(rows, columns=["id", "title", "codes"])


def test_calibrate_writes_the_calibration_code_then_uses(
    tmp_path: Path, fixtures_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from autocoder.coding.loaded import load_coder
    from autocoder.config import load_settings
    from autocoder.workspace import Workspace

    monkeypatch.setenv("AUTOCODER_HOME", str(tmp_path / "home"))
    _run(["taxonomy", "import", "onet", str(fixtures_dir / "onet_mini"), "--version", "mini"])
    _run(["index", "build"])
    (tmp_path / "dev.csv").write_text(DEV)
    (tmp_path / "recipe.toml").write_text(RECIPE.format(dev=tmp_path / "dev.csv"))
    model = tmp_path / "model"
    _run(["train", "--recipe", str(tmp_path / "recipe.toml"), "--output", str(model)])
    assert not (model / "calibration.json").exists()

    _titles(240, seed=0).rename(columns={"title": "job", "codes": "soc"}).to_csv(
        tmp_path / "cal.csv", index=False
    )
    out = json.loads(_run(["calibrate", str(tmp_path / "cal.csv"), "--model", str(model),
                           "--title-column", "job", "--code-column", "soc"]))  # fmt: skip
    assert out["rows"] == 240 and out["files"] == {"cal.csv": 240}
    assert (model / "calibration.json").is_file() and out["calibration"].endswith(
        "calibration.json"
    )
    detailed = out["thresholds"]["0.9"][0]
    assert detailed["threshold"] is None or detailed["precision"] >= 0.9
    sidecar = json.loads((model / "calibration.json").read_text())
    assert sidecar["fitted_on"]["files"] == {"cal.csv": 240}
    assert str(tmp_path) not in json.dumps(sidecar)  # no machine path in the model directory

    ws = Workspace.resolve(tmp_path / "home")
    coder = load_coder(load_settings(), ws, model=str(model))
    assert coder.calibration is not None and coder.calibration["segments"] == out["segments"]

    new = _titles(60, seed=1)
    new[["id", "title"]].to_csv(tmp_path / "new.csv", index=False)
    result = runner.invoke(app, ["code", str(tmp_path / "new.csv"), "-o", str(tmp_path / "o.csv"),
                                 "--model", str(model), "--target-precision", "0.9"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "target precision 0.9" in result.output
    coded = pd.read_csv(tmp_path / "o.csv", dtype=str, keep_default_na=False)
    assert len(coded) == 60 and set(coded["status"]) <= {"coded", "partial", "review"}
    review = coded[coded["status"] == "review"]
    assert (review["assigned_code"] == "").all()

    # a bad table names its rows; the packaged model is not written to
    pd.DataFrame({"title": ["nurse", ""], "codes": ["29-1141.00", "29-1141.00"]}).to_csv(
        tmp_path / "bad.csv", index=False
    )
    fail = _run(["calibrate", str(tmp_path / "bad.csv"), "--model", str(model)], code=2)
    assert "bad.csv: 1 bad rows" in fail and "row 2 (''): empty title" in fail
    fail = _run(["calibrate", str(tmp_path / "cal.csv"), "--model", "pretrained"], code=2)
    assert "pass --output DIR" in fail
    # too few rows
    _titles(20, seed=2).to_csv(tmp_path / "few.csv", index=False)
    fail = _run(["calibrate", str(tmp_path / "few.csv"), "--model", str(model)], code=2)
    assert "20 labeled rows cannot calibrate" in fail
    # a copy: the source is left as it was
    before = (model / "calibration.json").read_bytes()
    copy = tmp_path / "copy"
    _titles(150, seed=3).to_csv(tmp_path / "cal2.csv", index=False)
    again = json.loads(_run(["calibrate", str(tmp_path / "cal2.csv"), "--model", str(model),
                             "-o", str(copy)]))  # fmt: skip
    assert again["model"] == str(copy) and (copy / "config.json").is_file()
    assert (model / "calibration.json").read_bytes() == before
    assert (copy / "calibration.json").read_bytes() != before
    # retrain: without --calibrate it says the calibration is gone; with it, fits a new one
    from autocoder.review import queue

    ensure = queue.ensure_project
    ensure(ws, "p1")
    queue.enqueue(ws, "p1", [queue.QueuedTask("r1", "bedside carer, st. mary's")])
    queue.store_answers(ws, "p1", [queue.Answer(1, "r1", "29-1141.00", created_at="t1",
                                                updated_at="t1")])  # fmt: skip
    plain = runner.invoke(app, ["retrain", "--model", str(model), "-o", str(tmp_path / "r1"),
                                "--epochs", "1"])  # fmt: skip
    assert plain.exit_code == 0, plain.output
    assert "has a calibration" in plain.output and "autocoder calibrate --model" in plain.output
    assert json.loads(plain.stdout)["calibration"] is None
    assert not (tmp_path / "r1" / "calibration.json").exists()
    fail = _run(["retrain", "--model", str(model), "-o", str(tmp_path / "r3"), "--calibrate",
                 str(tmp_path / "o.csv")], code=2)  # fmt: skip
    assert "o.csv: no column 'title', 'codes'" in fail and not (tmp_path / "r3").exists()
    # a code the model's taxonomy lacks is found before the retrain too, with its row
    pd.DataFrame({"title": ["nurse", "astronaut"], "codes": ["29-1141.00", "99-9999.99"]}).to_csv(
        tmp_path / "unknown.csv", index=False
    )
    fail = _run(["retrain", "--model", str(model), "-o", str(tmp_path / "r3"), "--calibrate",
                 str(tmp_path / "unknown.csv")], code=2)  # fmt: skip
    assert "unknown.csv: 1 bad rows" in fail and "row 2 ('astronaut')" in fail
    assert not (tmp_path / "r3").exists()
    # too few rows, and a model that is not mixed with retrieval, fail before the retrain too
    fail = _run(["retrain", "--model", str(model), "-o", str(tmp_path / "r3"), "--calibrate",
                 str(tmp_path / "few.csv")], code=2)  # fmt: skip
    assert "20 labeled rows in few.csv cannot calibrate" in fail
    fail = _run(["--set", "coder.retrieval_weight=0", "retrain", "--model", str(model), "-o",
                 str(tmp_path / "r3"), "--calibrate", str(tmp_path / "cal2.csv")], code=2)  # fmt: skip
    assert "is not mixed with retrieval" in fail and not (tmp_path / "r3").exists()
    cal = json.loads(_run(["retrain", "--model", str(model), "-o", str(tmp_path / "r2"),
                           "--epochs", "1", "--calibrate", str(tmp_path / "cal2.csv")]))  # fmt: skip
    assert cal["calibration"]["rows"] == 150 and (tmp_path / "r2" / "calibration.json").is_file()
    # training into the directory again leaves no calibration of the old model there
    _run(["train", "--recipe", str(tmp_path / "recipe.toml"), "--output", str(copy)])
    assert not (copy / "calibration.json").exists()


def test_calibrate_retrieval_alone_into_the_workspace(
    tmp_path: Path,
    fixtures_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The retrieval coder alone (no model directory) is calibrated into the workspace for
    its index and settings: ``code --target-precision`` then works without a model, and a
    changed temperature or a rebuilt index finds no calibration instead of a stale one."""
    from autocoder.coding.loaded import load_coder
    from autocoder.config import load_settings
    from autocoder.examples.store import ExampleStore, example_key
    from autocoder.workspace import Workspace

    home = tmp_path / "home"
    monkeypatch.setenv("AUTOCODER_HOME", str(home))
    _run(["taxonomy", "import", "onet", str(fixtures_dir / "onet_mini"), "--version", "mini"])
    _run(["index", "build"])
    new = _titles(60, seed=1)
    new[["id", "title"]].to_csv(tmp_path / "new.csv", index=False)
    code = ["code", str(tmp_path / "new.csv"), "--model", "retrieval", "--target-precision", "0.9"]
    fail = _run([*code, "-o", str(tmp_path / "o0.csv")], code=2)
    assert "calibrate FILE --model MODEL|retrieval" in fail

    _titles(240, seed=0).to_csv(tmp_path / "cal.csv", index=False)
    fail = _run(["calibrate", str(tmp_path / "cal.csv"), "--model", "retrieval", "-o",
                 str(tmp_path / "copy")], code=2)  # fmt: skip
    assert "kept in the workspace" in fail and not (tmp_path / "copy").exists()
    out = json.loads(_run(["calibrate", str(tmp_path / "cal.csv"), "--model", "retrieval"]))
    assert out["model"] == "retrieval" and out["rows"] == 240
    path = Path(out["calibration"])
    assert path.parent == home / "calibration" / "onet" and path.name.startswith("retrieval-")
    sidecar = json.loads(path.read_text())
    assert sidecar["fitted_on"]["retrieval"]["aggregation"] == "softmax_sum"
    assert sidecar["fitted_on"]["retrieval"]["index"].endswith(":v1")
    assert str(tmp_path) not in json.dumps(sidecar)

    ws = Workspace.resolve(home)
    coder = load_coder(load_settings(), ws, model="retrieval")
    assert coder.calibration == sidecar
    _run([*code, "-o", str(tmp_path / "o1.csv")])
    coded = pd.read_csv(tmp_path / "o1.csv", dtype=str, keep_default_na=False)
    assert len(coded) == 60 and set(coded["status"]) <= {"coded", "partial", "review"}
    assert (coded.loc[coded["status"] == "review", "assigned_code"] == "").all()
    assert (coded.loc[coded["status"] != "review", "assigned_code"] != "").all()

    # with coded examples voting, as `code` codes with them: no store, no such calibration
    fail = _run(["calibrate", str(tmp_path / "cal.csv"), "--model", "retrieval",
                 "--with-examples"], code=2)  # fmt: skip
    assert "examples store is empty" in fail
    history = _titles(120, seed=5)
    history.to_csv(tmp_path / "history.csv", index=False)
    _run(["examples", "add", str(tmp_path / "history.csv"), "--code-column", "codes"])
    voted = json.loads(_run(["calibrate", str(tmp_path / "cal.csv"), "--model", "retrieval",
                             "--with-examples", "--taxonomy", "onet"]))  # fmt: skip
    keys = {example_key(t) for t in history["title"]}
    in_store = sum(example_key(t) in keys for t in _titles(240, seed=0)["title"])
    assert voted["examples"]["titles_in_store"] == in_store > 0
    assert voted["calibration"] == out["calibration"]  # the same retrieval, fitted again
    assert json.loads(path.read_text())["fitted_on"]["examples"] == voted["examples"]
    stored = len(ExampleStore.of(ws, "onet"))
    assert voted["examples"]["size"] == stored
    _run([*code, "-o", str(tmp_path / "o3.csv")])
    # the store grows after calibrating: coding still uses the calibration, and says so
    more = _titles(5, seed=9)
    more.to_csv(tmp_path / "more.csv", index=False)
    _run(["examples", "add", str(tmp_path / "more.csv"), "--code-column", "codes"])
    with caplog.at_level(logging.WARNING):
        assert load_coder(load_settings(), ws, model="retrieval").calibration is not None
    assert f"fitted on {stored} examples; the store has changed since" in caplog.text

    # another temperature scores otherwise: that coder has no calibration
    fail = _run(["--set", "index.temperature=0.08", *code, "-o", str(tmp_path / "o2.csv")],
                code=2)  # fmt: skip
    assert "needs a calibrated coder" in fail
    # nor has a rebuilt index (its scores may differ): calibrate again
    _run(["index", "build"])
    assert load_coder(load_settings(), ws, model="retrieval").calibration is None
    assert path.is_file()  # the old calibration is left where it was
