"""Issue 13: every bad input, fault and concurrent run gets a clear answer; nothing is lost or
mixed. Mostly through the CLI as a user runs it, on the O*NET fixture with the real MiniLM and a
real embedded Chroma store (one workspace built once for the module)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from autocoder.cli import app
from autocoder.coding.batch import code_file, ranked
from autocoder.coding.loaded import LoadedCoder
from autocoder.config import CoderConfig
from autocoder.embed import Embedder
from autocoder.io import iter_table, write_table
from autocoder.workspace import Workspace, file_lock
from tests.fakes import KeywordPredictor

runner = CliRunner()
RECORDS = pd.DataFrame(
    {
        "id": ["a", "b", "c", "d", "e", "f", "g"],
        "title": [
            "Staff Nurse",
            "Software Engineer",
            "Chief executive",
            "Pediatrician",
            "Registered nurse",
            "Java developer",
            "Nurse practitioner",
        ],
        "description": ["", "write code", "", "", "", "", ""],
    }
)


def _cli(home: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["--set", f"workspace.home={home}", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, fixtures_dir: Path) -> Path:
    """A workspace with the O*NET fixture imported and indexed."""
    home = tmp_path_factory.mktemp("ws")
    onet = str(fixtures_dir / "onet_mini")
    assert _cli(home, "taxonomy", "import", "onet", onet, "--version", "mini")[0] == 0
    assert _cli(home, "index", "build")[0] == 0
    return home


@pytest.fixture()
def records(tmp_path: Path) -> Path:
    path = tmp_path / "in.csv"
    RECORDS.to_csv(path, index=False)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# (1) a JSONL line that is JSON but not an object is an error row, the job goes on -------------
def test_jsonl_line_that_is_not_an_object_gets_an_error_row(built: Path, tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    lines = [
        '{"id": "a", "title": "Staff Nurse"}',
        "[1, 2]",
        '"x"',
        "3",
        "{not json",
        '{"id": "b", "title": "Software Engineer"}',
    ]
    src.write_text("\n".join(lines) + "\n")
    code, out, err = _cli(built, "code", str(src), "-o", str(tmp_path / "out.csv"))
    assert code == 0, err
    res = pd.read_csv(tmp_path / "out.csv", dtype=str, keep_default_na=False)
    assert len(res) == 6
    assert res["status"].tolist()[1:5] == [
        "error:not_an_object: line 2 holds a JSON list",
        "error:not_an_object: line 3 holds a JSON str",
        "error:not_an_object: line 4 holds a JSON int",
        "error:invalid_json: line 5: Expecting property name enclosed in double quotes",
    ]
    assert res["code_1"].tolist()[0] == "29-1141.00" and res["code_1"].tolist()[5] == "15-1252.00"
    assert json.loads(out)["errors"] == {"invalid_json": 1, "not_an_object": 3}


# (2) same input, model and settings: same bytes, whatever the batch size -----------------------
def test_same_input_gives_the_same_bytes_with_other_batch_sizes(
    built: Path, records: Path, tmp_path: Path
) -> None:
    outs = []
    for size in (2, 3, 7):
        out = tmp_path / f"out{size}.csv"
        no_cache = ("--set", "embedder.cache=false", "--set", f"coder.batch_size={size}")
        assert _cli(built, *no_cache, "code", str(records), "-o", str(out))[0] == 0
        outs.append(out.read_bytes())
    assert outs[0] == outs[1] == outs[2]


def test_an_embedding_does_not_depend_on_its_batch() -> None:
    embedder = Embedder(cache_dir=None)
    texts = ["Staff nurse", "Java developer writing code for a bank " * 3, "Cook", "Truck driver"]
    together = embedder.encode(texts)
    alone = np.vstack([embedder.encode([t]) for t in texts])
    assert np.array_equal(together, alone)


def test_ties_are_ordered_by_code_and_noise_below_the_rounding_is_ignored() -> None:
    classes = np.asarray(["b", "a", "c"])
    proba = np.asarray([[0.3, 0.3 + 1e-9, 0.4], [0.3 + 1e-9, 0.3, 0.4]])
    codes, scores = ranked(proba, classes, 3)
    assert codes.tolist() == [["c", "a", "b"], ["c", "a", "b"]]
    assert scores[0].tolist() == scores[1].tolist() == [0.4, 0.3, 0.3]


# (3) a job is keyed on the input's content and every setting; a change never mixes ------------
def test_changed_setting_starts_a_new_job_and_says_so(
    built: Path, records: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.csv"
    code, first, _ = _cli(built, "code", str(records), "-o", str(out))
    assert code == 0
    before = pd.read_csv(out)
    code, second, err = _cli(
        built, "--set", "index.temperature=0.5", "code", str(records), "-o", str(out)
    )
    assert code == 0 and "starting a new job" in err
    assert json.loads(first)["job"] != json.loads(second)["job"]
    after = pd.read_csv(out)
    assert (after["confidence"] < before["confidence"]).all()  # every row of the new settings


def test_rewritten_input_of_the_same_size_is_not_resumed(tmp_path: Path) -> None:
    class Stop(KeywordPredictor):
        def predict_proba(self, X: object) -> np.ndarray:
            if self.calls == 1:
                raise KeyboardInterrupt
            return super().predict_proba(X)

    keywords = {"nurse": "29-1141.00", "java": "15-1252.00"}
    src, out, runs = tmp_path / "in.csv", tmp_path / "out.csv", tmp_path / "runs"
    opts = CoderConfig(top_n=1, batch_size=2)
    kw = {"runs_dir": runs, "options": opts, "show_progress": False, "window_rows": 2}
    ids = ["1", "2", "3", "4"]
    write_table(pd.DataFrame({"id": ids, "title": [f"nurse {i}" for i in ids]}), src)
    with pytest.raises(KeyboardInterrupt):
        code_file(src, out, coder=LoadedCoder.from_predictor(Stop(keywords)), **kw)  # type: ignore[arg-type]
    write_table(pd.DataFrame({"id": ids, "title": [f"javas {i}" for i in ids]}), src)
    summary = code_file(src, out, coder=LoadedCoder.from_predictor(KeywordPredictor(keywords)), **kw)  # type: ignore[arg-type]
    assert summary.resumed_batches == 0 and "starting a new job" in summary.note
    assert pd.read_csv(out)["code_1"].tolist() == ["15-1252.00"] * 4


# (4) the output is checked before any record is coded ----------------------------------------
@pytest.mark.parametrize("name", ["/proc/x.csv", "OUT/out.txt"])
def test_unwritable_or_unknown_output_fails_up_front(built: Path, records: Path, name: str) -> None:
    out = name.replace("OUT", str(records.parent))
    code, _, err = _cli(built, "code", str(records), "-o", out)
    assert code == 2 and out.split("/")[-1] in err and ".tmp" not in err
    assert not list((built / "runs").glob("code-*/part-*"))


# (5) every option is validated at the CLI: exit code 2 with a clear message ------------------
@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--threshold", "5"),
        ("--threshold", "-1"),
        ("--threshold", "nan"),
        ("--top-n", "0"),
        ("--top-n", "-1"),
        ("--top-n", "100000"),
    ],
)
def test_bad_options_exit_2(records: Path, tmp_path: Path, option: str, value: str) -> None:
    code, _, err = _cli(
        tmp_path, "code", str(records), "-o", str(tmp_path / "o.csv"), option, value
    )
    assert code == 2 and "Invalid value" in err and option in err


def test_bad_label_options_exit_2(records: Path, tmp_path: Path) -> None:
    for args in (["-k", "0"], ["--suspect-threshold", "nan"], ["--limit", "0"]):
        code, _, err = _cli(tmp_path, "label", str(records), "-o", str(tmp_path / "o.csv"), *args)
        assert code == 2 and "Invalid value" in err


# (6) a Chroma server that is down or silent: one clear error before any record ---------------
def test_chroma_server_down_fails_before_any_record(
    built: Path, records: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.csv"
    server = ("--set", "index.host=127.0.0.1", "--set", f"index.port={_free_port()}")
    code, _, err = _cli(built, *server, "code", str(records), "-o", str(out))
    assert code == 1 and "cannot reach the Chroma server" in err and not out.exists()


@pytest.fixture()
def silent_server() -> Iterator[int]:
    """A socket that accepts connections and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield int(s.getsockname()[1])


def test_silent_chroma_server_times_out_with_the_setting(
    built: Path, records: Path, tmp_path: Path, silent_server: int
) -> None:
    out = tmp_path / "out.csv"
    server = (
        "--set",
        "index.host=127.0.0.1",
        "--set",
        f"index.port={silent_server}",
        "--set",
        "index.connect_timeout=0.5",
    )
    code, _, err = _cli(built, *server, "code", str(records), "-o", str(out))
    assert code == 1 and "within 0.5s (index.connect_timeout)" in err and not out.exists()


# (7) coding before `index build` says what to run -------------------------------------------
def test_code_before_index_build_says_to_build(
    fixtures_dir: Path, records: Path, tmp_path: Path
) -> None:
    home, out = tmp_path / "ws", tmp_path / "out.csv"
    _cli(home, "taxonomy", "import", "onet", str(fixtures_dir / "onet_mini"), "--version", "mini")
    code, _, err = _cli(home, "code", str(records), "-o", str(out))
    assert code == 1 and "autocoder index build" in err and not out.exists()


# (8) the index is locked while rebuilt, a job's output while written; the version is recorded
def test_locks_and_index_version(built: Path, records: Path, tmp_path: Path) -> None:
    ws, out = Workspace.resolve(built), tmp_path / "out.csv"
    with file_lock(ws.index_lock, exclusive=True, busy="test"):  # a rebuild in progress
        code, _, err = _cli(built, "code", str(records), "-o", str(out))
    assert code == 1 and "being rebuilt" in err and not out.exists()
    with file_lock(ws.index_lock, exclusive=False, busy="test"):  # a job reading the index
        code, _, err = _cli(built, "index", "build")
    assert code == 1 and "in use" in err
    code, _, _ = _cli(built, "code", str(records), "-o", str(out))
    assert code == 0
    version = pd.read_csv(out)["index_version"].unique().tolist()
    assert len(version) == 1 and version[0].endswith(":v1")
    assert _cli(built, "index", "build")[0] == 0
    assert _cli(built, "code", str(records), "-o", str(out))[0] == 0
    assert pd.read_csv(out)["index_version"].unique().tolist()[0].endswith(":v2")


def test_second_job_on_the_same_output_fails(tmp_path: Path) -> None:
    src, out, runs = tmp_path / "in.csv", tmp_path / "out.csv", tmp_path / "runs"
    write_table(pd.DataFrame({"id": ["1"], "title": ["nurse"]}), src)
    predictor = KeywordPredictor({"nurse": "29-1141.00"})

    class Nested(KeywordPredictor):
        """Starts a second job on the same output while the first one codes."""

        def predict_proba(self, X: object) -> np.ndarray:
            code_file(
                src, out, coder=LoadedCoder.from_predictor(predictor), runs_dir=runs,
                show_progress=False,
            )  # fmt: skip
            return super().predict_proba(X)

    from autocoder.workspace import LockedError

    with pytest.raises(LockedError, match="another job is writing"):
        code_file(
            src,
            out,
            coder=LoadedCoder.from_predictor(Nested({"nurse": "29-1141.00"})),
            runs_dir=runs,
            show_progress=False,
        )


# (9) -o equal to the input is refused --------------------------------------------------------
def test_output_equal_to_input_is_refused(built: Path, records: Path) -> None:
    before = records.read_bytes()
    code, _, err = _cli(built, "code", str(records), "-o", str(records))
    assert code == 2 and "is the input file" in err and records.read_bytes() == before


# (10) `label` exits non-zero when every record failed; counts per reason ---------------------
def test_label_with_every_llm_call_failing_exits_1(
    built: Path, records: Path, tmp_path: Path
) -> None:
    llm = (
        "--set",
        "llm.model=m",
        "--set",
        f"llm.base_url=http://127.0.0.1:{_free_port()}/v1",
        "--set",
        "llm.max_retries=0",
        "--set",
        "llm.cache=false",
    )
    code, out, err = _cli(built, *llm, "label", str(records), "-o", str(tmp_path / "l.csv"))
    assert code == 1 and "every record failed" in err
    summary = json.loads(out)
    assert summary["failed"] == summary["rows"] == 7 and sum(summary["errors"].values()) == 7


# (11) secrets are redacted in `autocoder config` and in validation errors ---------------------
def test_secrets_are_never_printed(tmp_path: Path) -> None:
    secret = "sk-do-not-print-1234"
    code, out, _ = _cli(
        tmp_path, "--set", f"llm.api_key={secret}", "--set", f"review.token={secret}", "config"
    )
    assert code == 0 and secret not in out
    shown = json.loads(out)
    assert shown["llm"]["api_key"] == shown["review"]["token"] == "**********"
    code, out, err = _cli(tmp_path, "--set", f"llm.api_ky={secret}", "config")
    assert code == 2 and "api_ky" in err and secret not in out + err


# streaming: fixed-size chunks whatever the format --------------------------------------------
@pytest.mark.parametrize("ext", ["csv", "jsonl", "parquet"])
def test_iter_table_streams_fixed_size_chunks(tmp_path: Path, ext: str) -> None:
    path = tmp_path / f"t.{ext}"
    write_table(pd.DataFrame({"id": [str(i) for i in range(10)], "title": ["x"] * 10}), path)
    sizes = [len(c) for c in iter_table(path, chunk_rows=4)]
    assert sizes == [4, 4, 2]
