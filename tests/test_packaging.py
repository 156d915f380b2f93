"""The wheel ships the runtime folders (prompts, configs, labeling, training) and the example,
and no path of the machine it was built on."""

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp_path = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            str(REPO),
            "-w",
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    (built,) = tmp_path.glob("autocoder-*.whl")
    return built


@pytest.mark.slow
def test_wheel_contains_runtime_resources(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in ("prompts", "configs", "labeling", "training"):
        shipped = {n for n in names if n.startswith(f"autocoder/_data/{folder}/")}
        in_repo = {
            f"autocoder/_data/{folder}/{p.relative_to(REPO / folder)}"
            for p in (REPO / folder).rglob("*")
            if p.is_file()
        }
        assert in_repo and in_repo <= shipped, folder
    assert "autocoder/_data/configs/default.toml" in names
    assert "autocoder/examples/vacancies.csv" in names
    # the packaged model (`--model pretrained`): its config and weights
    assert {
        "autocoder/pretrained/onet-29.2/config.json",
        "autocoder/pretrained/onet-29.2/weights.pt",
    } <= names
    assert "autocoder/pretrained/onet-29.2/calibration.json" in names  # autocoder.coding.trust
    # test doubles live in tests/, never in the wheel
    assert not [n for n in names if n.startswith(("autocoder/testing", "tests/"))]
    assert "autocoder/taxonomy/onet_starter/Task Statements.txt.gz" in names  # offline starter
    assert "autocoder/taxonomy/soc2018.csv" in names  # SOC 2018 group titles


#: a path of the build machine: /tmp, /work, /root, /home, or a climb out of the checkout
MACHINE_PATH = re.compile(rb"(?<![\w.])(/tmp/|/work/|/root/|/home/)|\.\./\.\./shared")


def machine_paths(wheel: Path) -> dict[str, list[str]]:
    """Wheel member -> the machine paths found in it (every file but weights and archives,
    including the metadata, which carries the README)."""
    found: dict[str, list[str]] = {}
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            if name.endswith((".pt", ".gz", ".png")):
                continue
            data = zf.read(name)
            hits = [m.group(0).decode() for m in MACHINE_PATH.finditer(data)]
            if hits:
                found[name] = sorted(set(hits))
    return found


@pytest.mark.slow
def test_wheel_has_no_machine_paths(wheel: Path) -> None:
    assert machine_paths(wheel) == {}
