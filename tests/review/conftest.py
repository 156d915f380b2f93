"""Fixtures for the review queue: a real Label Studio server (session), a real small model.

The server needs ``.venv-labelstudio`` (``bash scripts/setup-labelstudio.sh``), found through
``$AUTOCODER_LABELSTUDIO_PYTHON`` (scripts/test.sh sets it) or else in this checkout. Without it the
integration tests skip with that reason, unless ``$AUTOCODER_REQUIRE_LABELSTUDIO`` is set (CI):
then they fail, so a broken setup cannot pass as skipped.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from autocoder.config import Settings, load_settings
from autocoder.workspace import Workspace

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
RECORDS = HERE / "records.csv"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def labelstudio_python() -> Path:
    raw = os.environ.get("AUTOCODER_LABELSTUDIO_PYTHON")
    return Path(raw) if raw else REPO / ".venv-labelstudio" / "bin" / "python"


@dataclass
class LiveServer:
    ws: Workspace  # the workspace that runs the server (its token file lives there)
    url: str
    token: str
    port: int
    python: Path  # the Label Studio venv's Python it runs on (review.server_python)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A real Label Studio started by ``autocoder.review.server`` in a temporary workspace."""
    from autocoder.review import server

    python = labelstudio_python()
    if not python.exists():
        message = f"Label Studio venv missing ({python}); run `bash scripts/setup-labelstudio.sh`"
        if os.environ.get("AUTOCODER_REQUIRE_LABELSTUDIO"):
            pytest.fail(message + " ($AUTOCODER_REQUIRE_LABELSTUDIO is set)")
        pytest.skip(message)
    ws = Workspace.resolve(tmp_path_factory.mktemp("ls-home"))
    port = free_port()
    settings = load_settings(
        overrides=[
            f"review.port={port}",
            f"review.server_python={python}",
            "review.start_timeout=600",
        ]
    )
    info, started = server.start_server(ws, settings.review)
    assert started
    try:
        conn = server.local_connection(ws)
        assert conn is not None
        yield LiveServer(ws, conn[0], conn[1], port, python)
    finally:
        server.stop_server(ws)


@pytest.fixture(scope="session")
def mini_model(tmp_path_factory: pytest.TempPathFactory, fixtures_dir: Path) -> Path:
    """A real EmbeddingClassifier (packaged MiniLM + MLP) trained on the O*NET mini fixture."""
    from autocoder.classify.model import EmbeddingClassifier
    from autocoder.records import JobRecord
    from autocoder.taxonomy.onet import import_onet

    taxonomy = import_onet(fixtures_dir / "onet_mini")
    X, y = [], []
    for code in taxonomy.leaf_codes():
        for _, text in taxonomy.texts(code, ("title", "alt_title", "reported_title", "task")):
            X.append(JobRecord(text))
            y.append(code)
    clf = EmbeddingClassifier(
        classes=taxonomy.leaf_codes(), hidden=32, epochs=30, batch_size=16, val_fraction=0.0,
        calibrate=False, conformal_alpha=None, patience=100, seed=0,
    )  # fmt: skip
    clf.fit(X, y)
    return clf.save(tmp_path_factory.mktemp("model") / "mini")


def review_settings(home: Path, url: str, token: str, *extra: str) -> Settings:
    return load_settings(
        overrides=[
            f"workspace.home={str(home)!r}",
            f"review.url={url!r}",
            f"review.token={token!r}",
            "review.timeout=20",
            *extra,
        ]
    )


@pytest.fixture()
def review_ws(tmp_path: Path, fixtures_dir: Path) -> Workspace:
    """A fresh workspace with the O*NET mini taxonomy imported (default taxonomy 'onet')."""
    from autocoder.api import import_taxonomy

    ws = Workspace.resolve(tmp_path / "home")
    import_taxonomy("onet", fixtures_dir / "onet_mini", ws)
    return ws
