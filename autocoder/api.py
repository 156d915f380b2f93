"""Plain functions behind the CLI commands; tests and notebooks call these directly.

This is the layer that turns ``Settings`` and a ``Workspace`` into parts (embedder, index,
retrieval coder, trained model, LLM client and cache) and hands them to the modules below, which
never read settings themselves: taxonomy -> index -> (labeler, augment) -> classify -> coder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from autocoder.config import CoderConfig, ConfigError, Settings, describe_errors
from autocoder.embed import Embedder
from autocoder.index import (
    CodeIndex,
    IndexConnectionError,
    IndexNotBuiltError,
    MemoryIndex,
    index_name,
    make_index,
    next_version,
    record_version,
)
from autocoder.predictor import Predictor
from autocoder.retrieval import RetrievalCoder
from autocoder.taxonomy.model import Taxonomy
from autocoder.taxonomy.store import load_taxonomy, save_taxonomy
from autocoder.workspace import Workspace, file_lock

if TYPE_CHECKING:
    from autocoder.coder import CodingSummary
    from autocoder.llm.cache import LLMCache
    from autocoder.llm.client import LLMModel

TAXONOMY_KINDS = ("onet", "esco")


@dataclass
class ImportResult:
    name: str
    version: str
    path: Path
    n_codes: int
    n_leaves: int
    held_out: int


def import_taxonomy(
    kind: str,
    path: str | Path,
    ws: Workspace,
    *,
    version: str | None = None,
    holdout: str | Path | None = None,
) -> ImportResult:
    """Import an official release and store it as the current release of ``kind``.

    ``holdout`` is a table with a ``title`` column (e.g. a dev split): those titles are removed
    from every code's alternate/reported titles, so nothing downstream trains or indexes them.
    """
    if kind == "onet":
        from autocoder.taxonomy.onet import import_onet

        taxonomy = import_onet(path, version=version)
    elif kind == "esco":
        from autocoder.taxonomy.esco import import_esco

        taxonomy = import_esco(path, version=version)
    else:
        raise ValueError(f"unknown taxonomy {kind!r}; expected one of {TAXONOMY_KINDS}")
    if taxonomy.source:  # absolute: recipes find the release's sibling folders through it
        taxonomy.source = str(Path(taxonomy.source).expanduser().resolve())
    removed = 0
    if holdout is not None:
        from autocoder.devsplit import apply_holdout, read_holdout

        removed = apply_holdout(taxonomy, read_holdout(holdout))
        taxonomy.holdout = f"{removed} titles listed in {Path(holdout).resolve()}"
        taxonomy.holdout_file = str(Path(holdout).resolve())
    target = save_taxonomy(ws, taxonomy)
    return ImportResult(
        taxonomy.name, taxonomy.version, target, len(taxonomy), len(taxonomy.leaves()), removed
    )


def make_embedder(settings: Settings, ws: Workspace) -> Embedder:
    return Embedder.from_settings(settings.embedder, ws.embedding_cache)


@contextlib.contextmanager
def index_in_use(ws: Workspace) -> Iterator[None]:
    """A shared lock on the workspace's index: jobs reading it run together, a rebuild waits
    for none of them and fails clearly instead (``LockedError``)."""
    with file_lock(
        ws.index_lock,
        exclusive=False,
        busy="the index is being rebuilt (autocoder index build); run this again when it is done",
    ):
        yield


def build_locked(
    ws: Workspace, index: CodeIndex, taxonomy: Taxonomy, embedder: Embedder, *, show_progress: bool
) -> int:
    """Rebuild ``index`` under the workspace's exclusive index lock as its next version."""
    with file_lock(
        ws.index_lock,
        exclusive=True,
        busy="the index is in use by a running job or another build; try again when it is done",
    ):
        version = next_version(ws, index)
        n = index.build(taxonomy, embedder, show_progress=show_progress, version=version)
        record_version(ws, index, version)
    return n


def build_index(
    settings: Settings,
    ws: Workspace,
    taxonomy_name: str | None = None,
    *,
    show_progress: bool = True,
) -> tuple[CodeIndex, int]:
    taxonomy = load_taxonomy(ws, taxonomy_name or settings.taxonomy.default)
    embedder = make_embedder(settings, ws)
    index = make_index(settings, ws, taxonomy, embedder)
    return index, build_locked(ws, index, taxonomy, embedder, show_progress=show_progress)


def index_version(coder: RetrievalCoder) -> str:
    """``<collection>:v<build>`` of the coder's index; fails at once (``IndexNotBuiltError``,
    ``IndexConnectionError``) when the index is missing, empty or unreachable."""
    index = coder.index
    if index.count() == 0:
        raise IndexNotBuiltError(
            f"the index {index_name(index)} is empty; run `autocoder index build`"
        )
    return f"{index_name(index)}:v{index.version()}"


def predictor_index_version(predictor: Any) -> str:
    """The index version a predictor codes with ("" for a model alone)."""
    from autocoder.combine import CombinedPredictor
    from autocoder.examples.vote import WithExamples

    if isinstance(predictor, WithExamples):
        predictor = predictor.base
    if isinstance(predictor, CombinedPredictor):
        predictor = predictor.retrieval
    return index_version(predictor) if isinstance(predictor, RetrievalCoder) else ""


def _model_fingerprint(path: Path) -> dict[str, Any]:
    config = path / "config.json"
    files = sorted(
        (str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns)
        for p in path.rglob("*")
        if p.is_file()
    )
    return {"config_sha256": hashlib.sha256(config.read_bytes()).hexdigest(), "files": files}


def predictor_fingerprint(
    settings: Settings, taxonomy: Taxonomy, model_dir: str | Path | None
) -> dict[str, Any]:
    """The settings behind a predictor that change its output (part of a coding job's key)."""
    out: dict[str, Any] = {"taxonomy": [taxonomy.name, taxonomy.version, len(taxonomy)]}
    if model_dir:
        out["model"] = _model_fingerprint(Path(model_dir))
    else:
        out["embedder"] = settings.embedder.model_dump(exclude={"cache"})
        out["index"] = settings.index.model_dump(exclude={"connect_timeout", "timeout"})
    return out


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


PRETRAINED = "pretrained"


def pretrained_dir() -> Path:
    """The model that ships inside the package (``--model pretrained``): the default recipe
    trained on O*NET 29.2 + BLS + ESCO titles with the packaged MiniLM (README, "Coding
    quality")."""
    return Path(__file__).resolve().parent / "pretrained" / "onet-29.2"


def resolve_model_dir(model_dir: str | Path | None) -> Path | None:
    """``pretrained`` -> the packaged model; a path stays a path; None stays None."""
    if model_dir is None or str(model_dir) == "":
        return None
    return pretrained_dir() if str(model_dir) == PRETRAINED else Path(model_dir)


def model_taxonomy(model_dir: str | Path | None) -> str | None:
    """The name of the taxonomy a model directory was trained on (None when unknown), so an
    ESCO model codes against ESCO without ``--taxonomy``."""
    config = Path(model_dir) / "config.json" if model_dir else None
    if config is None or not config.is_file():
        return None
    name = json.loads(config.read_text()).get("metadata", {}).get("taxonomy", {}).get("name")
    return str(name) if name else None


def pretrained_fits(taxonomy: Taxonomy) -> bool:
    """Whether the packaged model codes ``taxonomy`` (the same O*NET-SOC leaf codes)."""
    config = pretrained_dir() / "config.json"
    if not config.is_file() or taxonomy.name != "onet":
        return False
    return sorted(json.loads(config.read_text())["classes"]) == sorted(taxonomy.leaf_codes())


def mixture_params(model: Any, settings: Settings) -> dict[str, Any]:
    """How retrieval is mixed into ``model``'s scores (``autocoder.combine``): what was fitted
    when it was trained (metadata ``combine``), else its recipe's weight, else none; a set
    ``coder.retrieval_weight`` overrides the weight (and drops the fitted calibration)."""
    meta = getattr(model, "metadata_", {})
    fitted = dict(meta.get("combine") or {})
    params = {
        "retrieval_weight": float(
            fitted["retrieval_weight"]
            if "retrieval_weight" in fitted
            else meta.get("recipe", {}).get("combine", {}).get("retrieval_weight", 0.0)
        ),
        "temperature": float(fitted.get("temperature", 1.0)),
        "conformal_threshold": fitted.get("conformal_threshold"),
    }
    if settings.coder.retrieval_weight is not None:
        params = {"retrieval_weight": float(settings.coder.retrieval_weight)}
    return params


def load_predictor(
    settings: Settings, ws: Workspace, taxonomy: Taxonomy, model_dir: str | Path | None
) -> tuple[Predictor, str]:
    """The trained model in ``model_dir`` (or config ``coder.model``; ``pretrained`` = the
    packaged model), mixed with retrieval as the model says, else the retrieval coder; the
    taxonomy's coded examples vote on top (``[examples]``; their hash is in the id)."""
    from autocoder.examples.loaded import with_examples

    predictor, predictor_id = _base_predictor(settings, ws, taxonomy, model_dir)
    embedder = make_embedder(settings, ws)
    return with_examples(settings, ws, taxonomy, predictor, predictor_id, embedder)


def _base_predictor(
    settings: Settings, ws: Workspace, taxonomy: Taxonomy, model_dir: str | Path | None
) -> tuple[Predictor, str]:
    model_dir = resolve_model_dir(model_dir or settings.coder.model)
    if model_dir:
        from autocoder.classify.model import load_model

        path = Path(model_dir)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path} is not a model directory (no config.json)")
        model = load_model(path, cache_dir=ws.embedding_cache if settings.embedder.cache else None)
        # the config's mtime: a model retrained into the same directory starts a new job
        model_id = f"model:{path.resolve()}:{(path / 'config.json').stat().st_mtime_ns}"
        params = mixture_params(model, settings)
        if not params["retrieval_weight"]:
            return model, model_id
        from autocoder.combine import CombinedPredictor

        retrieval = retrieval_coder(settings, ws, taxonomy)
        combined = CombinedPredictor(model, retrieval, **params).fit()
        tag = ":".join(str(v) for v in params.values())
        return combined, f"{model_id}+retrieval:{tag}:{index_version(retrieval)}"
    coder = retrieval_coder(settings, ws, taxonomy)
    return coder, f"retrieval:{taxonomy.name}:{taxonomy.version}:{coder.embedder.model_id}"


def _coder_options(
    settings: Settings, *, top_n: int | None, threshold: float | None
) -> CoderConfig:
    """The ``[coder]`` section with the call's ``top_n`` / ``threshold`` (validated) on top."""
    overrides: dict[str, Any] = {"top_n": top_n} if top_n is not None else {}
    if threshold is not None:
        overrides["threshold"] = threshold
    try:
        return CoderConfig.model_validate(settings.coder.model_dump() | overrides)
    except ValidationError as exc:
        raise ConfigError(f"invalid coder option:\n{describe_errors(exc)}") from None


def code(
    settings: Settings,
    ws: Workspace,
    input_path: str | Path,
    output_path: str | Path,
    *,
    taxonomy_name: str | None = None,
    model_dir: str | Path | None = None,
    top_n: int | None = None,
    threshold: float | None = None,
    show_progress: bool = True,
    engine: str = "local",
    address: str | None = None,
    workers: int = 2,
) -> CodingSummary:
    """Code a file with the ``local`` engine (checkpointed, resumable) or on ``ray``
    (``address`` of a running cluster, else a local one; ``workers`` model replicas)."""
    from autocoder.coder import check_paths, code_file

    if engine not in ("local", "ray"):
        raise ConfigError(f"unknown engine {engine!r}; use 'local' or 'ray'")
    options = _coder_options(settings, top_n=top_n, threshold=threshold)
    check_paths(Path(input_path), Path(output_path))
    model_dir = resolve_model_dir(model_dir or settings.coder.model)
    name = taxonomy_name or model_taxonomy(model_dir) or settings.taxonomy.default
    taxonomy = load_taxonomy(ws, name)
    with contextlib.ExitStack() as stack:
        stack.enter_context(index_in_use(ws))  # also a model mixes in retrieval's scores
        predictor, predictor_id = load_predictor(settings, ws, taxonomy, model_dir)
        version = predictor_index_version(predictor)
        labels = {c.code: c.title for c in taxonomy}
        fingerprint = predictor_fingerprint(settings, taxonomy, model_dir)
        if engine == "ray":
            return _code_on_ray(
                settings.model_copy(update={"coder": options}),
                ws,
                (Path(input_path), Path(output_path)),
                taxonomy,
                model_dir,
                predictor,
                predictor_id=predictor_id,
                fingerprint=fingerprint,
                index_version=version,
                address=address,
                workers=workers,
            )
        return code_file(
            input_path,
            output_path,
            predictor=predictor,
            labels=labels,
            runs_dir=ws.runs,
            predictor_id=predictor_id,
            fingerprint=fingerprint,
            index_version=version,
            options=options,
            show_progress=show_progress,
            uris={c.code: c.uri for c in taxonomy if c.uri},
        )


def _code_on_ray(
    settings: Settings,
    ws: Workspace,
    paths: tuple[Path, Path],
    taxonomy: Taxonomy,
    model_dir: str | Path | None,
    predictor: Predictor,
    *,
    predictor_id: str,
    fingerprint: dict[str, Any],
    index_version: str,
    address: str | None,
    workers: int,
) -> CodingSummary:
    from autocoder.coder import job_settings, output_columns
    from autocoder.engine_ray import code_file_ray
    from autocoder.predictor import SetPredictor

    with_sets = isinstance(predictor, SetPredictor)
    uris = {c.code: c.uri for c in taxonomy if c.uri}
    return code_file_ray(
        *paths,
        settings=settings,
        home=ws.root,
        taxonomy_name=taxonomy.name,
        model_dir=str(model_dir) if model_dir else None,
        labels={c.code: c.title for c in taxonomy},
        uris=uris,
        index_version=index_version,
        job_settings=job_settings(
            settings.coder,
            predictor_id=predictor_id,
            fingerprint=fingerprint,
            index_version=index_version,
            with_sets=with_sets,
        )
        | ({"with_uris": True} if uris else {}),
        columns=output_columns(settings.coder.top_n, with_sets=with_sets, with_uris=bool(uris)),
        address=address,
        workers=workers,
    )


def llm_model(settings: Settings, ws: Workspace) -> LLMModel:
    """The configured LLM; its calls are logged to ``<workspace>/runs/llm-calls.jsonl``."""
    from autocoder.llm.client import LLMModel

    return LLMModel.from_settings(settings.llm, call_log=ws.runs / "llm-calls.jsonl")


def llm_cache(settings: Settings, ws: Workspace) -> LLMCache | None:
    """The workspace's LLM answer cache, or None when ``llm.cache`` is off."""
    from autocoder.llm.cache import LLMCache

    return LLMCache(ws.llm_cache) if settings.llm.cache else None


def label(
    settings: Settings,
    ws: Workspace,
    input_path: str | Path,
    output_path: str | Path,
    *,
    label_column: str = "code",
    k: int = 5,
    limit: int | None = None,
    suspect_threshold: float = 0.5,
    taxonomy_name: str | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """RAG-label ``input_path`` (``autocoder label``); see ``autocoder.labeler.label_file``."""
    from autocoder.coder import check_paths
    from autocoder.labeler import label_file

    check_paths(Path(input_path), Path(output_path))
    taxonomy = load_taxonomy(ws, taxonomy_name or settings.taxonomy.default)
    cfg = settings.coder
    model = llm_model(settings, ws)
    with index_in_use(ws):
        retriever = retrieval_coder(settings, ws, taxonomy, top_k=k)
        index_version(retriever)
        return label_file(
            input_path,
            output_path,
            taxonomy=taxonomy,
            model=model,
            retriever=retriever,
            cache=llm_cache(settings, ws),
            label_column=label_column,
            id_column=cfg.id_column,
            title_column=cfg.title_column,
            description_column=cfg.description_column,
            k=k,
            suspect_threshold=suspect_threshold,
            limit=limit,
            prompt_dir=settings.llm.prompts_dir,
            show_progress=show_progress,
        )


def synth(
    settings: Settings,
    ws: Workspace,
    output_path: str | Path,
    *,
    min_per_code: int,
    training_data: str | Path | None = None,
    codes: Sequence[str] | None = None,
    max_codes: int | None = None,
    n_per_code: int = 30,
    k: int = 5,
    taxonomy_name: str | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Synthetic examples for rare codes (``autocoder synth``); the LLM and the retriever are
    only built when some code needs examples."""
    from autocoder.augment import plan_synth, synth_file

    taxonomy = load_taxonomy(ws, taxonomy_name or settings.taxonomy.default)
    plan = plan_synth(
        taxonomy, min_per_code, training_data=training_data, codes=codes, max_codes=max_codes
    )
    needed = bool(plan.targets)
    return synth_file(
        output_path,
        plan,
        model=llm_model(settings, ws) if needed else None,
        retriever=retrieval_coder(settings, ws, taxonomy, top_k=k) if needed else None,
        cache=llm_cache(settings, ws) if needed else None,
        n_per_code=n_per_code,
        k=k,
        prompt_dir=settings.llm.prompts_dir,
        show_progress=show_progress,
    )


def train(
    settings: Settings,
    ws: Workspace,
    output: str | Path,
    *,
    recipe: str | Path | None = None,
    refit: bool | None = None,
    show_progress: bool = True,
) -> Path:
    """``autocoder train``: the recipe's model, with its mixture with retrieval fitted over the
    workspace index (``classify.mixture``) when the index is built."""
    import logging

    from autocoder.classify.recipe import load_recipe, load_recipe_taxonomy, train_from_recipe

    overrides = {"train.refit": refit} if refit is not None else None
    loaded = load_recipe(recipe, overrides)
    taxonomy = load_recipe_taxonomy(loaded, ws, settings)
    retrieval: RetrievalCoder | None = None
    if loaded.combine.retrieval_weight > 0:  # no index work for a recipe that mixes nothing
        try:
            retrieval = retrieval_coder(settings, ws, taxonomy)
            index_version(retrieval)
        except (IndexNotBuiltError, IndexConnectionError) as exc:
            logging.getLogger(__name__).warning("no retrieval mixture fitted: %s", exc)
            retrieval = None
    return train_from_recipe(
        recipe,
        output,
        settings=settings,
        workspace=ws,
        overrides=overrides,
        show_progress=show_progress,
        retrieval=retrieval,
    )


def example_input() -> Path:
    import importlib.resources

    return Path(str(importlib.resources.files("autocoder.examples") / "vacancies.csv"))


def quickstart(
    settings: Settings,
    ws: Workspace,
    output_path: str | Path,
    *,
    onet_path: str | Path | None = None,
    input_path: str | Path | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Set up a workspace from what is at hand and code a file: the README's first command.

    Taxonomy: ``onet_path`` (an O*NET text release) if given, else an already imported O*NET,
    else the offline starter built from the O*NET files inside PyPI packages. Coder: the
    packaged model mixed with retrieval (``--model pretrained``) when it fits the taxonomy
    and no ``coder.model`` is configured, else what the settings say.
    """
    from autocoder.taxonomy.store import list_taxonomies

    steps: dict[str, Any] = {}
    if onet_path is not None:
        steps["import"] = import_taxonomy("onet", onet_path, ws).__dict__
    elif "onet" not in list_taxonomies(ws):
        from autocoder.taxonomy.starter import build_onet_starter

        folder = build_onet_starter(ws.downloads / "onet-starter")
        steps["import"] = import_taxonomy("onet", folder, ws).__dict__
    settings.taxonomy.default = "onet"
    taxonomy = load_taxonomy(ws, "onet")
    embedder = make_embedder(settings, ws)
    index = make_index(settings, ws, taxonomy, embedder)
    try:
        n_docs = index.count()
    except IndexNotBuiltError:
        n_docs = 0
    if n_docs == 0:
        n_docs = build_locked(ws, index, taxonomy, embedder, show_progress=show_progress)
    steps["index_documents"] = n_docs
    model = settings.coder.model or (PRETRAINED if pretrained_fits(taxonomy) else None)
    steps["coder"] = f"model {model} + retrieval" if model else "retrieval"
    summary = code(
        settings,
        ws,
        input_path or example_input(),
        output_path,
        taxonomy_name="onet",
        model_dir=model,
        show_progress=show_progress,
    )
    steps["coding"] = summary.to_dict()
    return json.loads(json.dumps(steps, default=str))


def paraphrase_file(
    input_path: str | Path,
    output_path: str | Path,
    *,
    settings: Settings,
    workspace: Workspace,
    per_record: int,
    model_dir: str | Path | None = None,
    coder_model: str | Path | None = None,
    filter_outputs: bool = True,
    label_column: str = "code",
    seed: int = 0,
    threads: int = 0,
    taxonomy_name: str | None = None,
) -> dict[str, Any]:
    """``autocoder paraphrase``: read, paraphrase (filtered by the current coder), write."""
    from autocoder.augment.paraphrase import Paraphraser, paraphrase_table
    from autocoder.io import read_table, write_table
    from autocoder.taxonomy.store import load_taxonomy

    df = read_table(input_path, string_columns=("id", label_column))
    needs_coder = filter_outputs or label_column not in df.columns
    taxonomy = load_taxonomy(workspace, taxonomy_name or settings.taxonomy.default)
    predictor = None
    if needs_coder:
        predictor, _ = load_predictor(settings, workspace, taxonomy, coder_model)
    model_dir = Path(model_dir) if model_dir else workspace.models / "paraphraser"
    paraphraser = Paraphraser.load(model_dir, workspace.models, threads=threads)
    out, stats = paraphrase_table(
        df,
        paraphraser,
        per_record=per_record,
        predictor=predictor,
        taxonomy=taxonomy,
        filter_outputs=filter_outputs,
        label_column=label_column,
        seed=seed,
        source=str(input_path),
    )
    write_table(out, output_path)
    return {
        "output": str(output_path),
        "model": paraphraser.name,
        "filtered": filter_outputs,
        **stats,
    }
