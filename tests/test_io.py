"""Issue 23: ids read exactly as written in every format, encodings named with a line, duplicated
columns refused, CSV cells safe to open in a spreadsheet (autocoder.io)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from autocoder.io import InputError, TableWriter, formula_safe, iter_table, read_table, write_table

JSONL_IDS = (
    '{"id": 7, "title": "nurse"}\n'
    '{"id": null, "title": "cook"}\n'
    '{"id": 9007199254740993, "title": "pilot"}\n'
    '{"id": 1.50, "title": "baker"}\n'
    '{"id": "007", "title": "spy", "score": 0.25}\n'
)


def test_jsonl_ids_keep_their_exact_text(tmp_path: Path) -> None:
    src = tmp_path / "ids.jsonl"
    src.write_text(JSONL_IDS)
    want = ["7", "", "9007199254740993", "1.50", "007"]
    assert read_table(src)["id"].tolist() == want
    assert [i for c in iter_table(src, chunk_rows=2) for i in c["id"]] == want
    # other columns keep their JSON types
    assert read_table(src)["score"].tolist()[-1] == 0.25


def test_parquet_int_ids_with_nulls_are_not_floats(tmp_path: Path) -> None:
    src = tmp_path / "ids.parquet"
    pq.write_table(pa.table({"id": pa.array([1, None, 2]), "title": ["a", "b", "c"]}), src)
    assert read_table(src)["id"].tolist() == ["1", "", "2"]
    assert next(iter_table(src, chunk_rows=10))["id"].tolist() == ["1", "", "2"]


def test_big_parquet_int_ids_are_exact(tmp_path: Path) -> None:
    src = tmp_path / "ids.parquet"
    pq.write_table(pa.table({"id": pa.array([9007199254740993, None]), "title": ["a", "b"]}), src)
    assert next(iter_table(src, chunk_rows=10))["id"].tolist() == ["9007199254740993", ""]


def test_latin1_byte_names_the_line_and_the_option(tmp_path: Path) -> None:
    src = tmp_path / "input.csv"
    lines = ["id,title"] + [f"{i},nurse" for i in range(1, 1501)] + ["1501,caf\u00e9 worker"]
    src.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    with pytest.raises(InputError, match=r"input.csv line 1502: not valid utf-8 \(use --encoding"):
        list(iter_table(src, chunk_rows=256))
    with pytest.raises(InputError, match="line 1502"):
        read_table(src)
    chunks = list(iter_table(src, chunk_rows=256, encoding="latin-1"))
    assert chunks[-1]["title"].tolist()[-1] == "caf\u00e9 worker"


def test_latin1_byte_in_jsonl_names_the_line(tmp_path: Path) -> None:
    src = tmp_path / "input.jsonl"
    src.write_bytes(b'{"id": "1", "title": "a"}\n{"id": "2", "title": "caf\xe9"}\n')
    with pytest.raises(InputError, match=r"input.jsonl line 2: not valid utf-8"):
        list(iter_table(src, chunk_rows=10))
    assert read_table(src, encoding="latin-1")["title"].tolist() == ["a", "caf\u00e9"]


def test_unknown_encoding_is_an_input_error(tmp_path: Path) -> None:
    src = tmp_path / "input.csv"
    src.write_text("id,title\n1,a\n")
    with pytest.raises(InputError, match="unknown encoding 'klingon'"):
        read_table(src, encoding="klingon")


def test_duplicated_column_is_refused(tmp_path: Path) -> None:
    csv = tmp_path / "dup.csv"
    csv.write_text("id,title,title\n1,nurse,cook\n")
    with pytest.raises(InputError, match="column 'title' appears 2 times"):
        list(iter_table(csv, chunk_rows=10))
    with pytest.raises(InputError, match="column 'title' appears 2 times"):
        read_table(csv)
    parquet = tmp_path / "dup.parquet"
    table = pa.Table.from_arrays(
        [pa.array(["1"]), pa.array(["a"]), pa.array(["b"])], names=["id", "title", "title"]
    )
    pq.write_table(table, parquet)
    with pytest.raises(InputError, match="column 'title' appears 2 times"):
        list(iter_table(parquet, chunk_rows=10))


def test_jsonl_line_with_a_key_twice_is_an_error_row(tmp_path: Path) -> None:
    src = tmp_path / "dup.jsonl"
    src.write_text('{"id": "1", "title": "a", "title": "b"}\n{"id": "2", "title": "c"}\n')
    chunk = next(iter_table(src, chunk_rows=10))
    assert chunk["__row_error__"].tolist() == [
        "error:duplicate_key: line 1 has the key 'title' twice",
        "",
    ]


@pytest.mark.parametrize(
    ("cell", "safe"),
    [
        ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("@SUM(1+1)", "'@SUM(1+1)"),
        ("-2+3", "'-2+3"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("-5", "-5"),  # a number written as text stays a number
        ("+1.5e3", "+1.5e3"),
        ("nurse", "nurse"),
        ("", ""),
    ],
)
def test_formula_safe(cell: str, safe: str) -> None:
    assert formula_safe(cell) == safe


def test_csv_writers_guard_text_cells_only(tmp_path: Path) -> None:
    df = pd.DataFrame({"id": ["=1+1", "@x", "ok"], "score": [-0.5, 1.0, -2.0]})
    for path in (tmp_path / "a.csv", tmp_path / "b.csv"):
        if path.name == "a.csv":
            write_table(df, path)
        else:
            writer = TableWriter(path)
            writer.write(df)
            writer.close()
        back = pd.read_csv(path, dtype={"id": str})
        assert back["id"].tolist() == ["'=1+1", "'@x", "ok"]
        assert back["score"].tolist() == [-0.5, 1.0, -2.0]
    write_table(df, tmp_path / "raw.csv", formula_guard=False)
    assert pd.read_csv(tmp_path / "raw.csv")["id"].tolist() == ["=1+1", "@x", "ok"]
    write_table(df, tmp_path / "o.jsonl")  # JSONL and Parquet are not spreadsheets: untouched
    assert read_table(tmp_path / "o.jsonl")["id"].tolist() == ["=1+1", "@x", "ok"]


def test_a_guarded_csv_reads_back_as_it_was(tmp_path: Path) -> None:
    ids = ['=HYPERLINK("http://x","y")', "@SUM(1+1)", "'quoted", "-5", "'-5"]
    write_table(pd.DataFrame({"id": ids}), tmp_path / "g.csv")
    assert read_table(tmp_path / "g.csv")["id"].tolist() == ids
    assert next(iter_table(tmp_path / "g.csv", chunk_rows=10))["id"].tolist() == ids
