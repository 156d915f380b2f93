"""The real O*NET 29.2 release from ../shared/data: import, dev split, index in Chroma, code."""

import json
from pathlib import Path

import pandas as pd
import pytest

from autocoder import api
from autocoder.config import load_settings
from autocoder.devsplit import make_dev_split
from autocoder.evaluate import run_eval
from autocoder.records import normalize_text
from autocoder.taxonomy.onet import read_alternate_titles
from autocoder.taxonomy.store import load_taxonomy
from autocoder.workspace import Workspace

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]


def test_real_onet_import_index_and_code(shared_data_dir: Path, tmp_path: Path) -> None:
    release = shared_data_dir / "onet_29.2"
    dev = make_dev_split(read_alternate_titles(release), fraction=0.2, seed=13)
    dev_path = tmp_path / "dev.csv"
    dev.to_csv(dev_path, index=False)
    ws = Workspace.resolve(tmp_path / "home")
    result = api.import_taxonomy("onet", release, ws, holdout=dev_path)
    assert result.n_leaves == 1016 and result.version == "29.2" and result.held_out >= len(dev)
    tax = load_taxonomy(ws, "onet")
    assert str(dev_path) in tax.holdout  # the store says what was held out
    indexed = {normalize_text(t) for c in tax.leaves() for t in c.alt_titles + c.reported_titles}
    assert not indexed & {normalize_text(t) for t in dev["title"]}  # dev never reaches the index
    # titles + descriptions keep the CI index small (2k documents); the benchmark uses all texts
    settings = load_settings(overrides=['index.kinds=["title", "description"]'])
    _, n_docs = api.build_index(settings, ws, "onet", show_progress=False)
    assert n_docs == 2 * 1016
    sample = dev.sample(150, random_state=0)
    sample[["id", "title"]].to_csv(tmp_path / "sample.csv", index=False)
    sample.to_csv(tmp_path / "gold.csv", index=False)
    summary = api.code(
        settings, ws, tmp_path / "sample.csv", tmp_path / "pred.parquet", show_progress=False
    )
    assert summary.rows == 150
    pred = pd.read_parquet(tmp_path / "pred.parquet")
    assert set(pred["status"]) <= {"coded", "review"}
    assert pred["code_1"].isin(tax.leaf_codes()).all()
    res = run_eval(
        tmp_path / "gold.csv", tmp_path / "pred.parquet", tmp_path / "report", taxonomy=tax
    )
    # far above chance (1/1016): retrieval on real titles works end to end
    assert res.metrics["top5_accuracy"] > 0.25, json.dumps(res.metrics, default=str)[:500]
    assert res.metrics["level_accuracy"]["major"] > res.metrics["top1_accuracy"]
