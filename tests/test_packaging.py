"""The wheel ships the runtime folders (prompts, configs, labeling, training) and the example."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO


@pytest.mark.slow
def test_wheel_contains_runtime_resources(tmp_path: Path) -> None:
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
    (wheel,) = tmp_path.glob("autocoder-*.whl")
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
