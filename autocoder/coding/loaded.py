"""The loaded coder: one factory turns (settings, workspace, model, taxonomy) into one object.

``load_coder`` resolves the model directory once (``pretrained`` = the model inside the
package), reads its ``config.json`` once, loads the taxonomy, builds the predictor (the trained
model mixed with retrieval as its metadata says, or the retrieval coder alone) and returns a
frozen ``LoadedCoder``: the predictor, its id and fingerprint (part of a coding job's key), the
index version, labels and URIs, the declared capabilities and what is needed to load it again
(``source``, for Ray replicas). The batch coder, the Ray engine, the HTTP service, review push,
emerging occupations and the paraphraser take that object whole; none of them re-resolves the
model or reads its config again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autocoder.coding.predictor import Capabilities, Predictor, capabilities_of
from autocoder.coding.retrieval import RetrievalCoder
from autocoder.config import Settings
from autocoder.embed import Embedder, directory_digest
from autocoder.index import IndexNotBuiltError, MemoryIndex, index_name, make_index
from autocoder.records import RecordsLike, as_records
from autocoder.taxonomy.model import Taxonomy
from autocoder.taxonomy.store import load_taxonomy
from autocoder.workspace import Workspace

#: ``--model pretrained``: the model that ships inside the package.
PRETRAINED = "pretrained"

#: ``--model retrieval``: the retrieval coder alone, whatever ``coder.model`` says.
RETRIEVAL = "retrieval"

CONFIG_FILE = "config.json"
#: The calibration sidecar's file name in a model directory (``autocoder.coding.trust``).
SIDECAR = "calibration.json"
CALIBRATION_FORMAT = 1
#: Files of a model directory that are not the model (``ModelFiles.model_id`` leaves them out).
_NOT_MODEL = frozenset({SIDECAR, SIDECAR + ".tmp"})


def pretrained_dir() -> Path:
    """The packaged model (``--model pretrained``): the default recipe trained on O*NET 29.2
    + BLS + ESCO titles with the packaged MiniLM."""
    return Path(__file__).resolve().parent.parent / "pretrained" / "onet-29.2"


def resolve_model_dir(model_dir: str | Path | None) -> Path | None:
    """``pretrained`` -> the packaged model; a path stays a path; None or "" -> None."""
    if model_dir is None or str(model_dir) == "":
        return None
    return pretrained_dir() if str(model_dir) == PRETRAINED else Path(model_dir)


def pretrained_fits(taxonomy: Taxonomy) -> bool:
    """Whether the packaged model codes ``taxonomy`` (the same O*NET-SOC leaf codes)."""
    config = pretrained_dir() / CONFIG_FILE
    if not config.is_file() or taxonomy.name != "onet":
        return False
    return sorted(json.loads(config.read_text())["classes"]) == sorted(taxonomy.leaf_codes())


def make_embedder(settings: Settings, ws: Workspace) -> Embedder:
    """The configured embedder, caching in the workspace."""
    return Embedder.from_settings(settings.embedder, ws.embedding_cache)


def retrieval_coder(
    settings: Settings, ws: Workspace, taxonomy: Taxonomy, *, top_k: int | None = None
) -> RetrievalCoder:
    """A fitted RetrievalCoder over the configured index (an in-memory index is built here)."""
    embedder = make_embedder(settings, ws)
    index = make_index(settings, ws, taxonomy, embedder)
    if isinstance(index, MemoryIndex):
        index.build(taxonomy, embedder)
    return RetrievalCoder(
        index,
        embedder,
        classes=taxonomy.leaf_codes(),
        top_k=top_k if top_k is not None else max(settings.coder.top_n, 20),
        temperature=settings.index.temperature,
    ).fit()


def index_version(coder: RetrievalCoder) -> str:
    """``<collection>:v<build>`` of the coder's index; fails at once (``IndexNotBuiltError``,
    ``IndexConnectionError``) when the index is missing, empty or unreachable."""
    index = coder.index
    if index.count() == 0:
        raise IndexNotBuiltError(
            f"the index {index_name(index)} is empty; run `autocoder index build`"
        )
    return f"{index_name(index)}:v{index.version()}"


def model_mixture(metadata: Mapping[str, Any], settings: Settings) -> dict[str, Any]:
    """How retrieval is mixed into a model's scores (``autocoder.coding.mixture``): what was
    fitted when it was trained (metadata ``combine``), else its recipe's weight, else none; a
    set ``coder.retrieval_weight`` overrides the weight (and drops the fitted calibration)."""
    if settings.coder.retrieval_weight is not None:
        return {"retrieval_weight": float(settings.coder.retrieval_weight)}
    fitted = dict(metadata.get("combine") or {})
    recipe_weight = metadata.get("recipe", {}).get("combine", {}).get("retrieval_weight", 0.0)
    return {
        "retrieval_weight": float(fitted.get("retrieval_weight", recipe_weight)),
        "temperature": float(fitted.get("temperature", 1.0)),
        "conformal_threshold": fitted.get("conformal_threshold"),
    }


#: The retrieval a mixture was fitted with when its model does not record it (``combine``
#: without ``retrieval``: models trained before it was recorded, with the defaults of then).
LEGACY_RETRIEVAL: dict[str, Any] = {"aggregation": "max", "temperature": 0.05}


def model_retrieval(metadata: Mapping[str, Any], settings: Settings) -> Settings:
    """``settings`` with the retrieval a model's mixture was fitted with (metadata
    ``combine.retrieval``: aggregation and temperature), so that the weight, temperature and
    calibration fitted on its probabilities still hold; the configured retrieval for a model
    with no fitted mixture."""
    combine = metadata.get("combine")
    if not combine:
        return settings
    fitted = {**LEGACY_RETRIEVAL, **dict(combine.get("retrieval") or {})}
    index = settings.index.model_copy(
        update={"aggregation": fitted["aggregation"], "temperature": float(fitted["temperature"])}
    )
    return settings.model_copy(update={"index": index})


def retrieval_tag(retrieval: RetrievalCoder) -> str:
    """``<aggregation>@<temperature>``: part of a predictor's id (its probabilities differ)."""
    info = retrieval.describe()
    return f"{info['aggregation']}@{info['temperature']:g}"


def load_trust(model_dir: str | Path) -> dict[str, Any] | None:
    """The calibration sidecar of ``model_dir``, or None when it has none."""
    return read_trust(Path(model_dir) / SIDECAR)


#: The index settings that change retrieval's probabilities (the rest say where it is).
RETRIEVAL_INDEX_KEYS = frozenset(
    {"kinds", "candidates_per_query", "hnsw_construction_ef", "hnsw_search_ef", "hnsw_m",
     "search", "aggregation", "temperature"}
)  # fmt: skip


def retrieval_sidecar(
    settings: Settings, ws: Workspace, taxonomy: Taxonomy, retrieval: RetrievalCoder,
    built: str,
) -> Path:  # fmt: skip
    """Where the calibration of the retrieval coder alone lives (it has no model directory):
    ``<workspace>/calibration/<taxonomy>/retrieval-<digest>.json``. The digest covers what
    its scores depend on: the taxonomy, the embedder, the index settings of
    :data:`RETRIEVAL_INDEX_KEYS` and the index build ``built`` (:func:`index_version`), so a
    rebuilt index or another temperature finds no calibration rather than a stale one."""
    key = {
        "taxonomy": [taxonomy.name, taxonomy.version, len(taxonomy)],
        "embedder": settings.embedder.model_dump(mode="json", exclude={"cache"}),
        "embedder_id": retrieval.embedder.model_id,  # a fine-tuned one: its files' digest
        "index": settings.index.model_dump(mode="json", include=set(RETRIEVAL_INDEX_KEYS)),
        "index_version": built,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return ws.calibration / taxonomy.name / f"retrieval-{digest}.json"


def retrieval_calibration(
    settings: Settings, ws: Workspace, taxonomy: Taxonomy, retrieval: RetrievalCoder,
    built: str,
) -> dict[str, Any] | None:  # fmt: skip
    """The calibration of the retrieval coder alone (:func:`retrieval_sidecar`), or None; a
    warning when the taxonomy has retrieval calibrations but none for this index and these
    settings (it was rebuilt, or the settings changed: calibrate again)."""
    path = retrieval_sidecar(settings, ws, taxonomy, retrieval, built)
    trust = read_trust(path)
    if trust is None and any(path.parent.glob("retrieval-*.json")):
        import logging

        logging.getLogger(__name__).warning(
            "retrieval has calibrations for %s in %s, but none for index %s with these settings; "
            "run `autocoder calibrate --model retrieval` again for calibrated confidence",
            taxonomy.name, path.parent, built,
        )  # fmt: skip
    return trust


def read_trust(path: Path) -> dict[str, Any] | None:
    """The calibration document at ``path``, or None when there is none; an unknown format
    fails loudly."""
    if not path.is_file():
        return None
    trust = json.loads(path.read_text())
    if trust.get("format_version") != CALIBRATION_FORMAT:
        raise ValueError(f"{path}: calibration format {trust.get('format_version')} unknown")
    return dict(trust)


@dataclass(frozen=True)
class ModelFiles:
    """A model directory, resolved once, with its ``config.json`` read once."""

    path: Path
    config_bytes: bytes

    @classmethod
    def read(cls, path: Path) -> ModelFiles:
        config = path / CONFIG_FILE
        if not config.is_file():
            raise FileNotFoundError(f"{path} is not a model directory (no {CONFIG_FILE})")
        return cls(path, config.read_bytes())

    @property
    def config(self) -> dict[str, Any]:
        return dict(json.loads(self.config_bytes))

    def taxonomy_name(self) -> str | None:
        """The taxonomy the model was trained on (None when its metadata does not say)."""
        name = self.config.get("metadata", {}).get("taxonomy", {}).get("name")
        return str(name) if name else None

    def model_id(self) -> str:
        """``model:<recipe name>@<digest of its files>``, the calibration sidecar left out: a
        copy or a move of the model (``calibrate --output``, another machine) is the same
        coder, so its examples fit and its review model version follow it; a model retrained
        into the same directory is another; no machine path is recorded."""
        name = self.config.get("metadata", {}).get("recipe", {}).get("name") or "unnamed"
        return f"model:{name}@{directory_digest(self.path, exclude=_NOT_MODEL)}"

    def fingerprint(self) -> dict[str, Any]:
        files = sorted(
            (str(p.relative_to(self.path)), p.stat().st_size, p.stat().st_mtime_ns)
            for p in self.path.rglob("*")
            if p.is_file()
        )
        return {"config_sha256": hashlib.sha256(self.config_bytes).hexdigest(), "files": files}


def coder_fingerprint(
    settings: Settings, taxonomy: Taxonomy, model: ModelFiles | None
) -> dict[str, Any]:
    """The settings behind a predictor that change its output (part of a coding job's key)."""
    out: dict[str, Any] = {"taxonomy": [taxonomy.name, taxonomy.version, len(taxonomy)]}
    if model is not None:
        out["model"] = model.fingerprint()
    # with a model too: retrieval mixed into it and the examples' votes use them
    out["embedder"] = settings.embedder.model_dump(exclude={"cache"})
    out["index"] = settings.index.model_dump(exclude={"connect_timeout", "timeout"})
    return out


@dataclass(frozen=True)
class CoderSource:
    """What ``load_coder`` was called with, to load the same coder elsewhere (a Ray replica)."""

    settings: dict[str, Any]  # ``Settings.model_dump(mode="json")``
    home: str
    model: str  # a model directory, or ``RETRIEVAL``
    taxonomy_name: str

    def load(self) -> LoadedCoder:
        settings = Settings.model_validate(self.settings)
        ws = Workspace.resolve(self.home)
        return load_coder(settings, ws, model=self.model, taxonomy_name=self.taxonomy_name)


@dataclass(frozen=True, eq=False)
class LoadedCoder:
    """A ready predictor with everything its callers need, built once by ``load_coder``."""

    predictor: Predictor
    predictor_id: str = ""
    fingerprint: Mapping[str, Any] = field(default_factory=dict)
    index_version: str = ""
    taxonomy: Taxonomy | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    uris: Mapping[str, str] = field(default_factory=dict)
    capabilities: Capabilities = Capabilities()
    model_dir: Path | None = None
    #: the retrieval coder inside (alone or mixed into the model), None for a model alone
    retrieval: RetrievalCoder | None = None
    #: the trained model's metadata (``config.json`` ``metadata``), {} for retrieval alone
    metadata: Mapping[str, Any] = field(default_factory=dict)
    source: CoderSource | None = None
    #: the calibration (a model's ``SIDECAR``, read once with the model; retrieval's from the
    #: workspace, :func:`retrieval_sidecar`); None without
    calibration: Mapping[str, Any] | None = None

    @classmethod
    def from_predictor(
        cls, predictor: Predictor, *, taxonomy: Taxonomy | None = None, **fields: Any
    ) -> LoadedCoder:
        """A coder around a ready predictor (tests, notebooks): labels and URIs from
        ``taxonomy`` unless given, capabilities as the predictor declares them, the calibration
        sidecar read from ``model_dir`` unless given."""
        if fields.get("model_dir") is not None:
            fields.setdefault("calibration", load_trust(fields["model_dir"]))
        if taxonomy is not None:
            fields.setdefault("labels", {c.code: c.title for c in taxonomy})
            fields.setdefault("uris", {c.code: c.uri for c in taxonomy if c.uri})
        return cls(predictor, taxonomy=taxonomy, capabilities=capabilities_of(predictor), **fields)

    @property
    def classes(self) -> np.ndarray:
        return np.asarray(self.predictor.classes_)

    def embed(self, X: RecordsLike) -> np.ndarray:
        """The records' embeddings from the predictor's own embedder (declared capability)."""
        if not self.capabilities.embeddings:
            raise ValueError(
                f"the coder {self.predictor_id or type(self.predictor).__name__} declares no "
                "embeddings; use a strategy that needs none"
            )
        return np.asarray(self.predictor.embed(as_records(X)), dtype=np.float32)  # type: ignore[attr-defined]

    def reload(self) -> LoadedCoder:
        """The same coder loaded again from its source (each Ray replica does this)."""
        if self.source is None:
            raise ValueError("this coder was not made by load_coder; it cannot be reloaded")
        return self.source.load()


def _model_predictor(
    settings: Settings, ws: Workspace, taxonomy: Taxonomy, files: ModelFiles
) -> tuple[Predictor, str, RetrievalCoder | None, dict[str, Any]]:
    """The trained model, mixed with retrieval as it says: (predictor, id, retrieval, meta)."""
    from autocoder.classify.model import load_model
    from autocoder.coding.mixture import CombinedPredictor

    cache = ws.embedding_cache if settings.embedder.cache else None
    model = load_model(files.path, cache_dir=cache, config=files.config)
    meta = dict(model.metadata_)
    params = model_mixture(meta, settings)
    if not params["retrieval_weight"]:
        return model, files.model_id(), None, meta
    retrieval = retrieval_coder(model_retrieval(meta, settings), ws, taxonomy)
    combined = CombinedPredictor(model, retrieval, **params).fit()
    tag = ":".join(str(v) for v in params.values())
    predictor_id = (
        f"{files.model_id()}+retrieval:{tag}:{retrieval_tag(retrieval)}:{index_version(retrieval)}"
    )
    return combined, predictor_id, retrieval, meta


def load_coder(
    settings: Settings,
    ws: Workspace,
    *,
    model: str | Path | None = None,
    taxonomy_name: str | None = None,
) -> LoadedCoder:
    """The coder ``autocoder code`` uses: the trained model in ``model`` (or config
    ``coder.model``; ``pretrained`` = the packaged model) mixed with retrieval as the model
    says, else (or with ``model="retrieval"``) the retrieval coder; the taxonomy is ``taxonomy_name``, else the model's, else
    ``taxonomy.default``; the taxonomy's coded examples vote on top (``autocoder.coding.examples``,
    their content hash in the predictor id). Fails at once when the index a coder needs is
    empty or unreachable."""
    wanted = model or settings.coder.model
    path = None if str(wanted) == RETRIEVAL else resolve_model_dir(wanted)
    files = ModelFiles.read(path) if path is not None else None
    name = taxonomy_name or (files.taxonomy_name() if files else None) or settings.taxonomy.default
    taxonomy = load_taxonomy(ws, name)
    meta: dict[str, Any] = {}
    if files is not None:
        predictor, predictor_id, retrieval, meta = _model_predictor(settings, ws, taxonomy, files)
        built = index_version(retrieval) if retrieval is not None else ""
        calibration = load_trust(files.path)
    else:
        retrieval = retrieval_coder(settings, ws, taxonomy)
        predictor = retrieval
        predictor_id = (
            f"retrieval:{taxonomy.name}:{taxonomy.version}:{retrieval.embedder.model_id}:"
            f"{retrieval_tag(retrieval)}"
        )
        built = index_version(retrieval)
        calibration = retrieval_calibration(settings, ws, taxonomy, retrieval, built)
    from autocoder.coding.examples import warn_calibration_drift, with_examples
    from autocoder.examples.store import ExampleStore

    predictor, predictor_id = with_examples(
        settings, ws, taxonomy, predictor, predictor_id, make_embedder(settings, ws)
    )
    warn_calibration_drift(calibration, predictor, ExampleStore.of(ws, taxonomy.name))
    source = CoderSource(
        settings.model_dump(mode="json"), str(ws.root), str(path) if path else RETRIEVAL, name
    )
    return LoadedCoder.from_predictor(
        predictor,
        taxonomy=taxonomy,
        predictor_id=predictor_id,
        fingerprint=coder_fingerprint(settings, taxonomy, files),
        index_version=built,
        model_dir=path,
        retrieval=retrieval,
        metadata=meta,
        source=source,
        calibration=calibration,
    )
