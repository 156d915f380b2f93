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
    summary = code_file(
        src, out, coder=LoadedCoder.from_predictor(KeywordPredictor(keywords)), **kw
    )  # type: ignore[arg-type]
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


# === issue 23 ================================================================================
def _one_line_error(err: str) -> bool:
    """stderr holds one ``error:`` line, nothing after it, and no traceback (progress bars
    before it are fine)."""
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    return len(errors) == 1 and lines[-1] == errors[0] and "Traceback" not in err


def _unwritable_dir(tmp_path: Path) -> Path:
    """A folder this process cannot create files in (root writes everywhere but in /sys)."""
    import os

    path = tmp_path / "ro"
    path.mkdir()
    path.chmod(0o555)
    return path if not os.access(path, os.W_OK) else Path("/sys")


@pytest.mark.parametrize("case", ["dir", "binary", "nested", "nested_reverse", "not_toml"])
def test_bad_configuration_is_one_line_and_exit_2(tmp_path: Path, case: str) -> None:
    binary = tmp_path / "bin.toml"
    binary.write_bytes(bytes(range(256)) * 4)
    bad = tmp_path / "bad.toml"
    bad.write_text("[coder\ntop_n = ")
    args = {
        "dir": ["--config", str(tmp_path)],
        "binary": ["--config", str(binary)],
        "nested": ["--set", "coder.top_n=1", "--set", "coder.top_n.x=1"],
        "nested_reverse": ["--set", "coder.top_n.x=1", "--set", "coder.top_n=1"],
        "not_toml": ["--config", str(bad)],
    }[case]
    code, _, err = _cli(tmp_path / "ws", *args, "config")
    assert code == 2 and _one_line_error(err), err


def test_workspace_that_is_a_file_or_read_only_is_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a_file = tmp_path / "afile"
    a_file.write_text("x")
    monkeypatch.setenv("AUTOCODER_HOME", str(a_file))
    result = runner.invoke(app, ["config"])
    assert result.exit_code == 2 and _one_line_error(result.stderr), result.stderr
    assert "afile" in result.stderr and "not a directory" in result.stderr
    code, _, err = _cli(_unwritable_dir(tmp_path), "taxonomy", "list")
    assert code == 2 and _one_line_error(err) and "not writable" in err, err


def test_full_disk_is_one_line_exit_1_and_nothing_is_lost(
    built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from autocoder.io import TableWriter

    out, records = tmp_path / "out.csv", tmp_path / "disk.csv"  # a job of its own
    RECORDS.assign(id=[f"disk-{i}" for i in RECORDS["id"]]).to_csv(records, index=False)
    out.write_text("an earlier result\n")
    real_write = TableWriter.write
    calls = {"n": 0}

    def full(self: TableWriter, df: pd.DataFrame) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.tmp))
        real_write(self, df)

    monkeypatch.setattr(TableWriter, "write", full)
    small = ("--set", "coder.batch_size=2")
    code, _, err = _cli(built, *small, "code", str(records), "-o", str(out))
    assert code == 1 and _one_line_error(err) and "no space left" in err.lower(), err
    assert out.read_text() == "an earlier result\n"  # the earlier output is untouched
    assert not list(tmp_path.glob(".out.csv.tmp"))
    monkeypatch.setattr(TableWriter, "write", real_write)
    code, summary, _ = _cli(built, *small, "code", str(records), "-o", str(out))
    assert code == 0 and json.loads(summary)["resumed_batches"] >= 1
    assert len(pd.read_csv(out)) == len(RECORDS)


def test_config_never_prints_a_url_password(tmp_path: Path) -> None:
    url = f"http://admin:PASS5678@127.0.0.1:{_free_port()}"
    code, out, _ = _cli(
        tmp_path, "--set", f"review.url={url}", "--set", f"llm.base_url={url}/v1", "config"
    )
    assert code == 0 and "PASS5678" not in out
    assert json.loads(out)["review"]["url"].startswith("http://***@127.0.0.1:")


def test_jobs_from_two_workspaces_on_the_same_output_do_not_both_succeed(tmp_path: Path) -> None:
    """The lock is on the output path itself, not in a workspace."""
    from autocoder.workspace import LockedError

    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_table(pd.DataFrame({"id": ["1"], "title": ["nurse"]}), src)
    predictor = KeywordPredictor({"nurse": "29-1141.00"})

    class Nested(KeywordPredictor):
        """Starts a job from another workspace on the same output while this one codes."""

        def predict_proba(self, X: object) -> np.ndarray:
            code_file(
                src,
                out,
                coder=LoadedCoder.from_predictor(predictor),
                runs_dir=tmp_path / "ws2" / "runs",
                show_progress=False,
            )
            return super().predict_proba(X)

    with pytest.raises(LockedError, match="another job is writing"):
        code_file(
            src,
            out,
            coder=LoadedCoder.from_predictor(Nested({"nurse": "29-1141.00"})),
            runs_dir=tmp_path / "ws1" / "runs",
            show_progress=False,
        )
    assert not out.exists()
    other = tmp_path / "elsewhere" / ".." / "out.csv"  # the same file by another spelling
    (tmp_path / "elsewhere").mkdir()
    code_file(
        src,
        other,
        coder=LoadedCoder.from_predictor(predictor),
        runs_dir=tmp_path / "ws1" / "runs",
        show_progress=False,
    )
    assert pd.read_csv(out)["code_1"].tolist() == ["29-1141.00"]


def _interrupted_job(tmp_path: Path) -> tuple[Path, Path, Path, dict[str, object]]:
    """A job of four records killed after its first batch (of two) was checkpointed."""

    class Stop(KeywordPredictor):
        def predict_proba(self, X: object) -> np.ndarray:
            if self.calls == 1:
                raise KeyboardInterrupt
            return super().predict_proba(X)

    keywords = {"nurse": "29-1141.00"}
    src, out, runs = tmp_path / "in.csv", tmp_path / "out.csv", tmp_path / "runs"
    kw: dict[str, object] = {
        "runs_dir": runs,
        "options": CoderConfig(top_n=1, batch_size=2),
        "show_progress": False,
        "window_rows": 2,
    }
    write_table(pd.DataFrame({"id": list("abcd"), "title": [f"nurse {i}" for i in range(4)]}), src)
    with pytest.raises(KeyboardInterrupt):
        code_file(src, out, coder=_coder(Stop(keywords)), **kw)  # type: ignore[arg-type]
    (part,) = runs.glob("code-*/part-000000.arrow")
    return src, out, part, kw


NURSE = {"nurse": "29-1141.00"}


def _coder(predictor: KeywordPredictor) -> LoadedCoder:
    return LoadedCoder.from_predictor(predictor, labels={"29-1141.00": "Registered Nurses"})


def _tamper(part: Path) -> None:
    import pyarrow.feather as feather

    table = feather.read_table(str(part)).to_pandas()
    table["code_1"] = "99-9999.99"
    feather.write_feather(table, str(part), compression="uncompressed")


def test_an_edited_checkpoint_part_is_redone_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    src, out, part, kw = _interrupted_job(tmp_path)
    _tamper(part)
    summary = code_file(src, out, coder=_coder(KeywordPredictor(NURSE)), **kw)  # type: ignore[arg-type]
    assert summary.resumed_batches == 0 and "does not match its checksum" in summary.note
    assert "part-000000.arrow" in caplog.text
    assert pd.read_csv(out)["code_1"].tolist() == ["29-1141.00"] * 4


def test_a_checkpoint_part_with_an_unknown_code_is_redone_even_with_its_checksum(
    tmp_path: Path,
) -> None:
    from autocoder.io import file_sha256

    src, out, part, kw = _interrupted_job(tmp_path)
    _tamper(part)
    sums = part.parent / "checksums.sha256"
    sums.write_text(f"{file_sha256(part)}  {part.name}\n")  # the checksum forged as well
    summary = code_file(src, out, coder=_coder(KeywordPredictor(NURSE)), **kw)  # type: ignore[arg-type]
    assert summary.resumed_batches == 0 and "99-9999.99" in summary.note
    assert pd.read_csv(out)["code_1"].tolist() == ["29-1141.00"] * 4


def test_an_intact_checkpoint_is_resumed_and_its_checksum_is_in_the_manifest(
    tmp_path: Path,
) -> None:
    src, out, part, kw = _interrupted_job(tmp_path)
    manifest = json.loads((part.parent / "manifest.json").read_text())
    assert manifest["checksums"] == "checksums.sha256"
    assert part.name in (part.parent / "checksums.sha256").read_text()
    summary = code_file(src, out, coder=_coder(KeywordPredictor(NURSE)), **kw)  # type: ignore[arg-type]
    assert summary.resumed_batches == 1 and summary.note == ""
