"""Coded examples in `autocoder code`: real MiniLM, real embedded Chroma, the O*NET fixture.

Adding examples takes effect on the next run without retraining, and changes the job key: a
job interrupted before `examples add` is not resumed by the run after it (no mixed output)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autocoder import api
from autocoder.coding.retrieval import RetrievalCoder
from autocoder.config import load_settings
from autocoder.examples.ops import add_file
from autocoder.examples.store import AddSpec, ExampleStore
from autocoder.io import read_table
from autocoder.taxonomy.store import load_taxonomy
from autocoder.workspace import Workspace

pytestmark = pytest.mark.slow


def _records(path: Path) -> Path:
    titles = ["Cake decorator", "Staff nurse", "cake decorator", "Java developer",
              "CAKE DECORATOR", "Paediatrician", "Chief executive", "Cake decorator"]  # fmt: skip
    pd.DataFrame({"id": [f"r{i}" for i in range(len(titles))], "title": titles}).to_csv(
        path, index=False
    )
    return path


def test_examples_take_effect_and_change_the_job_key(
    tmp_path: Path, fixtures_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = Workspace.resolve(tmp_path / "home")
    # whole titles: the interruption below patches the predictor's predict_proba, which the
    # segment scorer does not call
    settings = load_settings(
        overrides=["coder.batch_size=2", "coder.threshold=0.5", "coder.segment_titles=false"]
    )
    api.import_taxonomy("onet", fixtures_dir / "onet_mini", ws, version="mini")
    api.build_index(settings, ws, show_progress=False)
    inp = _records(tmp_path / "in.csv")

    calls = {"n": 0}
    real = RetrievalCoder.predict_proba

    def stop_after_one(self: RetrievalCoder, X: object) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(self, X)  # type: ignore[arg-type]

    monkeypatch.setattr(
        "autocoder.coding.batch.WINDOW_ROWS", 2
    )  # one batch of 2 rows per model pass
    monkeypatch.setattr(RetrievalCoder, "predict_proba", stop_after_one)
    with pytest.raises(KeyboardInterrupt):  # interrupted with part of the job checkpointed
        api.code(settings, ws, inp, tmp_path / "out.csv", show_progress=False)
    monkeypatch.setattr(RetrievalCoder, "predict_proba", real)
    before_jobs = {p.name for p in ws.runs.glob("code-*")}
    assert len(before_jobs) == 1

    # the example's code: the one retrieval finds least likely for the title
    retrieval = api.retrieval_coder(settings, ws, load_taxonomy(ws, "onet"))
    p = retrieval.predict_proba(["Cake decorator"])[0]
    coded_as = str(retrieval.classes_[int(np.argmin(p))])
    pd.DataFrame({"title": ["Cake Decorator"], "soc": [coded_as]}).to_csv(tmp_path / "h.csv")
    store = ExampleStore.of(ws, "onet")
    assert add_file(store, load_taxonomy(ws, "onet"), tmp_path / "h.csv",
                    AddSpec(code_column="soc")).added == 1  # fmt: skip
    summary = api.code(settings, ws, inp, tmp_path / "out.csv", show_progress=False)
    assert summary.resumed_batches == 0  # a new job: nothing from before the add is reused
    assert Path(summary.run_dir).name not in before_jobs
    out = read_table(tmp_path / "out.csv").merge(pd.read_csv(inp), on="id")
    cake = out[out["title"].str.lower() == "cake decorator"]
    assert len(cake) == 4 and set(cake["code_1"]) == {coded_as} and set(cake["status"]) == {"coded"}
    assert (cake["confidence"].astype(float) >= 0.95).all()
    nurse = out[out["title"] == "Staff nurse"]
    assert nurse["code_1"].item() == "29-1141.00"  # what no example covers: as before

    # the same examples: the same job key; removed: back to the interrupted job, resumed
    again = api.code(settings, ws, inp, tmp_path / "again.csv", show_progress=False)
    assert again.job == summary.job
    store.remove_source("h")
    back = api.code(settings, ws, inp, tmp_path / "back.csv", show_progress=False)
    assert Path(back.run_dir).name in before_jobs and back.resumed_batches == 1
    assert read_table(tmp_path / "back.csv").iloc[0]["code_1"] != coded_as
