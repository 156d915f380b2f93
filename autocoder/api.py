"""The workflows behind the CLI commands (import, index, code, label, synth, train,
quickstart, paraphrase); tests and notebooks call these directly.

Each turns ``Settings`` and a ``Workspace`` into the parts it needs and hands them to the
modules below, which never read settings themselves. The coder comes from one factory,
``autocoder.coding.load_coder``; model resolution, fingerprints and job keys live there.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from autocoder.coding.loaded import (
    PRETRAINED,
    RETRIEVAL,
    SIDECAR,
    ModelFiles,
    index_version,
    load_coder,
    make_embedder,
    pretrained_fits,
    resolve_model_dir,
    retrieval_coder,
)
from autocoder.coding.retrieval import RetrievalCoder
from autocoder.config import CoderConfig, ConfigError, Settings, describe_errors
from autocoder.index import (
    CodeIndex,
    IndexConnectionError,
    IndexNotBuiltError,
    build_locked,
    index_in_use,
    make_index,
)
from autocoder.taxonomy.store import load_taxonomy, save_taxonomy
from autocoder.workspace import Workspace

if TYPE_CHECKING:
    from autocoder.coding.batch import CodingSummary
    from autocoder.coding.trust_fit import CalibrationTable
    from autocoder.llm.cache import LLMCache
    from autocoder.llm.client import LLMModel
    from autocoder.taxonomy.model import Taxonomy

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


def _coder_options(
    settings: Settings,
    *,
    top_n: int | None,
    threshold: float | None,
    target_precision: float | None = None,
    encoding: str | None = None,
) -> CoderConfig:
    """The ``[coder]`` section with the call's ``top_n`` / ``threshold`` / ``target_precision``
    / ``encoding`` (validated) on top; an explicit threshold drops the configured target
    precision."""
    if threshold is not None and target_precision is not None:
        raise ConfigError("give --threshold or --target-precision, not both")
    given = {"top_n": top_n, "threshold": threshold, "encoding": encoding}
    overrides: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    if threshold is not None:
        overrides["target_precision"] = None
    if target_precision is not None:
        overrides["target_precision"] = target_precision
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
    target_precision: float | None = None,
    show_progress: bool = True,
    engine: str = "local",
    address: str | None = None,
    workers: int = 2,
    encoding: str | None = None,
    skills: int = 0,
) -> CodingSummary:
    """Code a file with the ``local`` engine (checkpointed, resumable) or on ``ray``
    (``address`` of a running cluster, else a local one; ``workers`` model replicas);
    ``encoding`` of a CSV/JSONL input overrides ``coder.encoding``. ``target_precision``
    (default ``coder.target_precision``) needs a calibrated model (``autocoder.coding.trust``);
    ``threshold`` is a bare threshold instead. ``skills`` > 0 adds each record's top ESCO skills
    (``skills``, ``skill_uris``; local engine, needs an imported ESCO taxonomy with skills)."""
    from autocoder.coding.batch import check_paths, code_file
    from autocoder.coding.trust import SIDECAR, uncalibrated_note, usable_calibration

    if engine not in ("local", "ray"):
        raise ConfigError(f"unknown engine {engine!r}; use 'local' or 'ray'")
    if skills and engine != "local":
        raise ConfigError("--skills works with --engine local only")
    options = _coder_options(
        settings,
        top_n=top_n,
        threshold=threshold,
        target_precision=target_precision,
        encoding=encoding,
    )
    check_paths(Path(input_path), Path(output_path))
    settings = settings.model_copy(update={"coder": options})
    with index_in_use(ws):  # also a model mixes in retrieval's scores
        coder = load_coder(settings, ws, model=model_dir, taxonomy_name=taxonomy_name)
        if target_precision is not None and usable_calibration(coder) is None:
            raise ConfigError(
                f"--target-precision needs a calibrated coder (a {SIDECAR} in the model's "
                "directory, or for retrieval alone one in the workspace): run `autocoder "
                "calibrate FILE --model MODEL|retrieval` on labeled real titles, or use --threshold"
            )
        if note := uncalibrated_note(coder, options):
            logging.getLogger(__name__).warning("%s", note)
        if engine == "ray":
            from autocoder.coding.engine_ray import RayOptions, code_file_ray

            return code_file_ray(
                Path(input_path), Path(output_path), coder=coder, options=options,
                ray_options=RayOptions(address=address, workers=workers), output=settings.output,
            )  # fmt: skip
        return code_file(
            input_path, output_path, coder=coder, runs_dir=ws.runs, options=options,
            show_progress=show_progress, extra=skill_columns(ws, skills) if skills else None,
            output=settings.output,
        )  # fmt: skip


def skill_columns(ws: Workspace, top_k: int) -> Any:
    """The ``skills``/``skill_uris`` output columns of ``autocoder code --skills K``: the
    ``skills extract`` extractor over the workspace's ESCO skills."""
    from autocoder.skills.columns import SkillColumns
    from autocoder.skills.service import make_extractor

    extractor, ident = make_extractor(ws, top_k=top_k)
    return SkillColumns(extractor, top_k, ident)


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
    from autocoder.coding.batch import check_paths
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
    # a calibration left in ``output`` belongs to the model trained there before
    (Path(output) / SIDECAR).unlink(missing_ok=True)
    return train_from_recipe(
        recipe,
        output,
        settings=settings,
        workspace=ws,
        overrides=overrides,
        show_progress=show_progress,
        retrieval=retrieval,
    )


def fit_examples(
    settings: Settings,
    ws: Workspace,
    *,
    model: str | Path | None = None,
    taxonomy_name: str | None = None,
    rows: int = 2000,
    share: float = 0.2,
    seed: int = 0,
) -> dict[str, Any]:
    """``autocoder examples fit``: the vote settings and blend temperature for the coder
    ``model`` (as ``code`` loads it) fitted on the taxonomy's examples store with examples held
    out (``autocoder.examples.fit``; for a model trained on the store, only the example titles
    it never trained on); written beside the store and returned with the path."""
    from autocoder.coding.examples import VOTE_SETTINGS
    from autocoder.examples.fit import fit_examples as fit
    from autocoder.examples.fit import save_fit
    from autocoder.examples.store import ExampleStore

    plain = settings.model_copy(
        update={"examples": settings.examples.model_copy(update={"enabled": False})}
    )
    coder = load_coder(plain, ws, model=model, taxonomy_name=taxonomy_name)
    if coder.taxonomy is None:  # load_coder always loads one
        raise RuntimeError("the coder has no taxonomy")
    store = ExampleStore.of(ws, coder.taxonomy.name)
    table = store.table()
    if table.empty:
        raise ValueError(
            f"no coded examples for {coder.taxonomy.name}; add some with `autocoder examples add`"
        )
    cfg = settings.examples
    configured = {k: getattr(cfg, k) for k in VOTE_SETTINGS}
    embedder = make_embedder(settings, ws)
    trained_on = coder.metadata.get("examples", {})  # a model trained on the store
    untrained = trained_on.get("untrained_keys") if trained_on.get("enabled") else None
    retrained = coder.metadata.get("retrain_examples", {}).get("enabled")
    if untrained is None and (trained_on.get("enabled") or retrained):
        logging.getLogger(__name__).warning(
            "%s trained on the examples store but does not record the titles it never trained "
            "on (trained by an older autocoder, or retrained on the store from a model that "
            "was not): the fit holds out titles it trained on and will trust it too much; "
            "train it anew with `autocoder train` to fit on untrained titles",
            model,
        )
    result = fit(table, coder.predictor, embedder, configured=configured, rows=rows,
                 share=share, seed=seed, untrained=untrained)  # fmt: skip
    path = save_fit(store, result, predictor_id=coder.predictor_id,
                    content_hash=store.content_hash())  # fmt: skip
    return {**result, "path": str(path), "taxonomy": coder.taxonomy.name}


def calibration_tables(
    taxonomy: Taxonomy,
    files: Sequence[str | Path],
    *,
    title_column: str = "title",
    code_column: str = "codes",
) -> list[CalibrationTable]:
    """The labeled titles of each table in ``files``, every row checked against ``taxonomy``
    (``trust_fit.calibration_table``: a missing column or a bad row is an ``InputError``
    naming the file and the row)."""
    from autocoder.coding.trust_fit import calibration_table
    from autocoder.io import read_table

    return [
        calibration_table(
            read_table(Path(f), string_columns=(title_column, code_column)),
            taxonomy,
            title_column=title_column,
            code_column=code_column,
            name=Path(f).name,
        )  # fmt: skip
        for f in files
    ]


def check_calibration_tables(
    ws: Workspace, model: str | Path, files: Sequence[str | Path], settings: Settings
) -> None:
    """Check before a long retrain, not after it, what ``calibrate`` would refuse in
    ``retrain --calibrate``: a bad table (``calibration_tables``, against ``model``'s
    taxonomy), fewer rows than ``trust_fit.MIN_ROWS`` in all, and a ``model`` that is not mixed
    with retrieval (its retrained copy would not be either, so no calibration is used)."""
    from autocoder.coding.trust import supports_segments
    from autocoder.coding.trust_fit import MIN_ROWS

    if str(model) == RETRIEVAL:
        raise ValueError("retrain needs a model directory (or `pretrained`), not `retrieval`")
    tables = calibration_tables(load_taxonomy(ws, _model_taxonomy_name(settings, model)), files)
    rows = sum(len(t) for t in tables)
    if rows < MIN_ROWS:
        raise ValueError(
            f"{rows} labeled rows in {', '.join(Path(f).name for f in files)} cannot calibrate "
            f"a model; give at least {MIN_ROWS} real titles it did not train on"
        )
    plain = settings.model_copy(
        update={"examples": settings.examples.model_copy(update={"enabled": False})}
    )
    if not supports_segments(load_coder(plain, ws, model=model).predictor):
        raise ValueError(
            f"{model} is not mixed with retrieval (coder.retrieval_weight / its recipe's "
            "combine), nor will its retrained copy be: a calibration would not be used"
        )


def _model_taxonomy_name(settings: Settings, model: str | Path) -> str:
    """The taxonomy ``load_coder`` codes ``model`` in: the model's own (its metadata), else
    ``taxonomy.default`` (and for retrieval)."""
    if str(model) == RETRIEVAL:
        return settings.taxonomy.default
    own = ModelFiles.read(Path(resolve_model_dir(model) or model)).taxonomy_name()
    return own or settings.taxonomy.default


def calibrate(
    settings: Settings,
    ws: Workspace,
    model: str | Path,
    files: Sequence[str | Path],
    *,
    output: str | Path | None = None,
    title_column: str = "title",
    code_column: str = "codes",
    with_examples: bool = False,
    taxonomy_name: str | None = None,
    show_progress: bool = False,
) -> dict[str, Any]:
    """``autocoder calibrate``: fit the calibration sidecar of ``model`` (its calibrated
    confidence, target precision and partial codes) on labeled real titles in ``files``
    (``autocoder.coding.trust_fit``) and write it into the model directory, or into a copy
    at ``output`` (needed for the packaged model, which is not written to). ``retrieval``
    (the retrieval coder alone, which has no directory) is calibrated into the workspace, for
    its taxonomy, embedder, index settings and index build
    (``autocoder.coding.loaded.retrieval_sidecar``). Returns where it went, the rows per file
    and the thresholds at 0.95 and 0.9 with their precision. ``with_examples``: calibrate the
    coder with its taxonomy's coded examples voting, as ``autocoder code`` codes with them
    (for a coder the examples dominate, e.g. ESCO with an office's coded history); the store's
    content hash and how many calibration titles it holds are recorded (those are optimistic:
    keep calibration titles out of the store). ``taxonomy_name``: the taxonomy retrieval
    codes (default ``taxonomy.default``; a model codes its own)."""
    import shutil

    from autocoder.coding.examples import WithExamples
    from autocoder.coding.loaded import retrieval_sidecar
    from autocoder.coding.trust import save_trust, supports_segments, thresholds_for, write_trust
    from autocoder.coding.trust_fit import CalibrationTable, fit_sidecar

    alone = str(model) == RETRIEVAL
    source = None if alone else Path(resolve_model_dir(model) or model)
    if alone and output is not None:
        raise ValueError(
            "the retrieval coder's calibration is kept in the workspace; --output is for "
            "model directories"
        )
    if source is not None:
        ModelFiles.read(source)  # fails at once on a directory that is not a model
    if output is None and str(model) == PRETRAINED:
        raise ValueError(
            "the packaged model is not written to; pass --output DIR to calibrate a copy of it"
        )
    if not files:
        raise ValueError("give at least one table of labeled titles to calibrate on")
    plain = settings.model_copy(
        update={"examples": settings.examples.model_copy(update={"enabled": False})}
    )
    coder = load_coder(
        settings if with_examples else plain, ws, model=model, taxonomy_name=taxonomy_name
    )
    if with_examples and not isinstance(coder.predictor, WithExamples):
        raise ValueError(
            f"--with-examples: the {coder.taxonomy.name if coder.taxonomy else ''} examples "
            "store is empty or examples.enabled is false; add examples first "
            "(`autocoder examples add`)"
        )
    if coder.taxonomy is None or not supports_segments(coder.predictor):
        raise ValueError(
            f"{model} is not mixed with retrieval (coder.retrieval_weight / its recipe's "
            "combine): a calibration would not be used"
        )
    tables = calibration_tables(
        coder.taxonomy, files, title_column=title_column, code_column=code_column
    )
    table = CalibrationTable(
        [t for tb in tables for t in tb.titles], [g for tb in tables for g in tb.gold]
    )
    taxonomy = coder.taxonomy
    fitted_on: dict[str, Any] = {
        "files": {tb.name: len(tb) for tb in tables},
        "taxonomy": f"{taxonomy.name} {taxonomy.version}",
    }
    if isinstance(coder.predictor, WithExamples):
        from autocoder.examples.store import ExampleStore, example_key

        store = ExampleStore.of(ws, taxonomy.name)
        stored = set(store.table()["key"])
        fitted_on["examples"] = {
            "store": store.content_hash(),
            "size": len(store),
            "titles_in_store": sum(example_key(t) in stored for t in table.titles),
        }
    retrieval = coder.retrieval
    if source is None and retrieval is not None:
        fitted_on["retrieval"] = {**retrieval.describe(), "index": coder.index_version}
    with index_in_use(ws):
        trust = fit_sidecar(
            coder.predictor, taxonomy, table, show_progress=show_progress, fitted_on=fitted_on
        )
    if source is None:
        if retrieval is None:  # load_coder gives retrieval alone its retrieval coder
            raise ValueError("the retrieval coder was not loaded")
        shown = RETRIEVAL
        path = write_trust(
            trust, retrieval_sidecar(plain, ws, taxonomy, retrieval, coder.index_version)
        )
    else:
        target = source
        if output is not None:
            target = Path(output)
            if target.exists() and any(target.iterdir()):
                raise ValueError(f"--output {target} exists and is not empty")
            shutil.copytree(source, target, dirs_exist_ok=True)
        shown, path = str(target), save_trust(trust, target)
    return {
        "model": shown,
        "calibration": str(path),
        "rows": trust["fitted_on"]["rows"],
        "files": trust["fitted_on"]["files"],
        "top1": round(trust["fitted_on"]["top1"], 4),
        "segments": trust["segments"],
        **({"examples": fitted_on["examples"]} if "examples" in fitted_on else {}),
        **({"exact_matches": trust["exact"]} if "exact" in trust else {}),
        "thresholds": {str(t): thresholds_for(trust, t) for t in (0.95, 0.9)},
    }


def refit_examples_for(
    settings: Settings, ws: Workspace, model: str | Path
) -> dict[str, Any] | None:
    """After ``train`` or ``retrain`` into ``model``: when the store of its taxonomy has been
    fitted for some coder (``examples fit``), fit it for ``model`` too (a fit belongs to one
    coder, and a new model is another), held out as the latest fit was (``rows``, ``share``,
    ``seed``). None, logged, when the store has no fit, too few
    examples or no index to fit against."""

    from autocoder.examples.fit import latest_fit
    from autocoder.examples.store import ExampleStore

    name = _model_taxonomy_name(settings, model)
    last = latest_fit(ExampleStore.of(ws, name))
    if last is None:
        return None
    how = {k: last[k] for k in ("rows", "share", "seed") if k in last}  # as it was fitted
    try:
        return fit_examples(settings, ws, model=model, taxonomy_name=name, **how)
    except (ValueError, IndexNotBuiltError, IndexConnectionError) as exc:
        logging.getLogger(__name__).warning("examples not refitted for %s: %s", model, exc)
        return None


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
    steps["outcome"] = outcome(summary)
    return json.loads(json.dumps(steps, default=str))


def outcome(summary: CodingSummary) -> dict[str, Any]:
    """How many records were coded, partially coded, left for review or failed, and the
    target precision (or threshold) that decided it."""
    status = summary.status
    return {
        "coded": int(status.get("coded", 0)),
        "partial": int(status.get("partial", 0)),
        "review": int(status.get("review", 0)),
        "failed": int(summary.failed),
        "target_precision": summary.calibration.get("target_precision"),
        "threshold": summary.calibration.get("threshold"),
    }


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

    df = read_table(input_path, string_columns=("id", label_column))
    coder = None
    if filter_outputs or label_column not in df.columns:  # the current coder is needed
        coder = load_coder(settings, workspace, model=coder_model, taxonomy_name=taxonomy_name)
    model_dir = Path(model_dir) if model_dir else workspace.models / "paraphraser"
    paraphraser = Paraphraser.load(model_dir, workspace.models, threads=threads)
    out, stats = paraphrase_table(
        df,
        paraphraser,
        per_record=per_record,
        coder=coder,
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
