"""The loaded coder: same rows as the batch coder, batch-independent; the micro-batcher."""

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

from autocoder import api
from autocoder.coding.batch import code_frame
from autocoder.coding.loaded import LoadedCoder, pretrained_dir
from autocoder.coding.retrieval import RetrievalCoder
from autocoder.config import load_settings
from autocoder.index import MemoryIndex
from autocoder.service.engine import (
    MicroBatcher,
    code_pass,
    describe_coder,
    load_service_coder,
    search,
)
from autocoder.workspace import Workspace
from tests.fakes import HashingEmbedder, mini_taxonomy

TITLES = [
    "Staff Nurse", "RN - night shift, ICU", "Senior Software Engineer (Python, Go)",
    "data warehouse developer", "CEO", "Chief Executive Officer of a regional bank",
    "pediatric doctor", "Sustainability lead", "ETL engineer building nightly loads into the "
    "enterprise data warehouse for reporting and analytics teams", "nurse", "coder", "x",
]  # fmt: skip


@pytest.fixture(scope="module")
def coder(tmp_path_factory: pytest.TempPathFactory, fixtures_dir: Path):  # type: ignore[no-untyped-def]
    ws = Workspace.resolve(tmp_path_factory.mktemp("ws"))
    settings = load_settings(overrides=["embedder.cache=false"])
    api.import_taxonomy("onet", fixtures_dir / "onet_mini", ws, version="mini")
    api.build_index(settings, ws, show_progress=False)
    return load_service_coder(settings, ws)


OPTS = load_settings().coder


def test_describe_coder_names_model_never_a_path(tmp_path: Path) -> None:
    tax, embedder = mini_taxonomy(), HashingEmbedder(32)
    index = MemoryIndex()
    index.build(tax, embedder)
    retrieval = RetrievalCoder(index, embedder, classes=tax.leaf_codes(), top_k=5).fit()
    alone = LoadedCoder.from_predictor(retrieval, taxonomy=tax, index_version="ix:v1")
    about = describe_coder(alone, OPTS.model_copy(update={"threshold": 0.6}))
    assert about == {
        "model": "retrieval",
        "taxonomy": f"{tax.name} {tax.version}",
        "index_version": "ix:v1",
        "calibration": {"calibrated": False, "threshold": 0.6},
    }
    office = LoadedCoder.from_predictor(retrieval, taxonomy=tax, model_dir=tmp_path / "office-v2")
    assert describe_coder(office, OPTS)["model"] == "office-v2"
    assert str(tmp_path) not in json.dumps(describe_coder(office, OPTS))
    packaged = LoadedCoder.from_predictor(
        retrieval, taxonomy=tax, model_dir=pretrained_dir(), calibration=None
    )
    assert describe_coder(packaged, OPTS)["model"] == "pretrained"


def frame(ids: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"id": [f"r{i}" for i in ids], "title": [TITLES[i] for i in ids]})


@pytest.mark.slow
def test_batch_independent(coder) -> None:  # type: ignore[no-untyped-def]
    """A record's row is the same alone, in a mixed pass of many requests, and repeated."""
    n = len(TITLES)
    alone = pd.concat([code_pass(coder, [frame([i])], OPTS)[0][0] for i in range(n)])
    mixed, _ = code_pass(coder, [frame(list(range(n))), frame([3, 1]), frame([0] * 3)], OPTS)
    together = mixed[0]
    cols = [c for c in together.columns if c != "row"]
    pd.testing.assert_frame_equal(
        alone[cols].reset_index(drop=True), together[cols].reset_index(drop=True)
    )
    assert mixed[1]["row"].tolist() == [0, 1]  # each request numbered on its own
    assert (
        mixed[1].set_index("id").loc["r3", "score_1"]
        == together.set_index("id").loc["r3", "score_1"]
    )
    # ids are checked within a request only: repeats in one request are duplicates
    assert mixed[2]["status"].tolist()[1:] == ["error:duplicate_id"] * 2
    assert together.set_index("id").loc["r0", "code_1"] == "29-1141.00"
    # the rows `autocoder code` writes for an in-memory table (autocoder.coding.code_frame)
    pd.testing.assert_frame_equal(together, code_frame(coder, frame(list(range(n))), OPTS))
    assert search(coder, "registered nurse", 2)[0]["code"] == "29-1141.00"


def test_micro_batcher_one_pass() -> None:
    """Requests that arrive within the window share one call; each gets its own table."""
    calls: list[int] = []

    def run(frames: list[pd.DataFrame]) -> list[pd.DataFrame]:
        calls.append(len(frames))
        return [f.assign(n=len(frames)) for f in frames]

    async def main() -> list[pd.DataFrame]:
        with ThreadPoolExecutor(1) as ex:
            batcher = MicroBatcher(run, ex, window_s=0.2, max_records=100)
            await batcher.start()
            out = await asyncio.gather(
                *(batcher.submit(pd.DataFrame({"x": [i]})) for i in range(5))
            )
            await batcher.stop()
        return list(out)

    out = asyncio.run(main())
    assert calls == [5]
    assert [int(t["x"].iloc[0]) for t in out] == [0, 1, 2, 3, 4]


def test_micro_batcher_error_reaches_every_request() -> None:
    def run(frames: list[pd.DataFrame]) -> list[pd.DataFrame]:
        raise RuntimeError("index down")

    async def main() -> list[object]:
        with ThreadPoolExecutor(1) as ex:
            batcher = MicroBatcher(run, ex, window_s=0.05, max_records=100)
            await batcher.start()
            out = await asyncio.gather(
                *(batcher.submit(pd.DataFrame({"x": [i]})) for i in range(2)),
                return_exceptions=True,
            )
            await batcher.stop()
        return list(out)

    assert [str(e) for e in asyncio.run(main())] == ["index down", "index down"]
