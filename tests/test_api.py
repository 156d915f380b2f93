from pathlib import Path

from autocoder import api
from autocoder.config import load_settings
from autocoder.workspace import Workspace
from tests.fakes import tiny_taxonomy


def test_retrieval_coder_on_the_memory_backend_needs_no_index_build(tmp_path: Path) -> None:
    settings = load_settings(overrides=['index.backend="memory"'])
    ws = Workspace.resolve(tmp_path)
    coder = api.retrieval_coder(settings, ws, tiny_taxonomy(), top_k=2)
    codes, probs, _ = coder.rank(["hgv truck driver"])
    assert codes[0][0] == "53-3032.00" and len(codes[0]) == 2
    assert abs(float(probs[0].sum()) - 1.0) < 1e-6
