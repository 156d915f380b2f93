"""Training recipes (TOML in ``training/``) and ``train_from_recipe``, behind ``autocoder train``.

A recipe names everything a model is trained from: the workspace taxonomy and the dev holdout
removed from it, extra labeled / synthetic / feedback tables, the split, the embedder (the same
``EmbedderConfig`` section as the runtime settings; optionally fine-tuned), the network, the loss
and the calibration. ``train_from_recipe`` builds and saves the training set (Arrow, in the
workspace), fine-tunes the embedder when asked (saved under the workspace
``models/embedders``), trains the classifier and saves it as a model directory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from autocoder.classify import data as D
from autocoder.classify.calibrate import DEFAULT_CONFORMAL_METHOD, ConformalMethod
from autocoder.classify.losses import LOSSES
from autocoder.classify.model import EmbeddingClassifier, render
from autocoder.config import EmbedderConfig, Settings
from autocoder.records import InputFormat
from autocoder.taxonomy.model import Taxonomy
from autocoder.tomlfile import load_toml_model
from autocoder.workspace import Workspace

log = logging.getLogger(__name__)

DEFAULT_RECIPE = "classifier.toml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataSection(_Section):
    taxonomy: str | None = Field(
        None, description="Workspace taxonomy name; None = the settings' taxonomy.default."
    )
    holdout: str = Field(
        "onet-dev",
        description="'onet-dev' (the taxonomy's import holdout, else the dev split of the O*NET "
        "release it was imported from), 'none', or a dev table path.",
    )
    holdout_fraction: float = 0.2
    holdout_seed: int = 13
    kinds: list[str] = Field(default_factory=lambda: list(D.TAXONOMY_KINDS))
    title_duties_pairs: int = Field(2, ge=0)
    labeled: list[str] = Field(default_factory=list)
    synthetic: list[str] = Field(default_factory=list)
    feedback: list[str] = Field(default_factory=list)
    paraphrases: list[str] = Field(
        default_factory=list, description="`autocoder paraphrase` output tables (balancing)."
    )
    paraphrase_min_per_code: int = Field(
        0, ge=0, description="Top up codes below this many rows with paraphrases; 0 = add all."
    )
    val_fraction: float = Field(0.1, ge=0, lt=1)
    val_formats: list[str] | None = Field(default_factory=lambda: ["title"])
    min_per_class: int = Field(0, ge=0)
    max_per_class: int = Field(0, ge=0, description="0 = no undersampling.")
    seed: int = 0

    @model_validator(mode="before")
    @classmethod
    def _no_release(cls, raw: Any) -> Any:
        """``release`` (import an O*NET release directly) was removed; recipes saved in older
        model directories carry ``release = ""``, which is dropped."""
        if isinstance(raw, dict) and "release" in raw:
            raw = dict(raw)
            if raw.pop("release"):
                raise ValueError(
                    "data.release was removed: import the release into the workspace "
                    "(`autocoder taxonomy import onet PATH`) and name it in data.taxonomy"
                )
        return raw


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
    name: str = Field("cross_entropy", description="A loss registered in classify.losses.LOSSES.")
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _registered(cls, name: str) -> str:
        if name not in LOSSES:
            raise ValueError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)}")
        return name


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
    conformal_method: ConformalMethod = DEFAULT_CONFORMAL_METHOD


class Recipe(_Section):
    name: str = "classifier"
    description: str = ""
    data: DataSection = Field(default_factory=DataSection)
    embedder: EmbedderConfig = Field(default_factory=EmbedderConfig)
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
    return load_toml_model(path, Recipe, error=RecipeError, what="recipe", overrides=overrides)


# --- pieces of the pipeline -------------------------------------------------------------------
def load_recipe_taxonomy(
    recipe: Recipe, workspace: Workspace, settings: Settings | None = None
) -> Taxonomy:
    """The workspace taxonomy the recipe names (the settings' default when it names none)."""
    from autocoder.taxonomy.store import load_taxonomy

    name = recipe.data.taxonomy or (settings or Settings()).taxonomy.default
    return load_taxonomy(workspace, name)


def _release_dev_split(release: Path, *, fraction: float, seed: int) -> pd.DataFrame:
    from autocoder.devsplit import make_dev_split
    from autocoder.taxonomy.onet import read_alternate_titles

    return make_dev_split(read_alternate_titles(release), fraction=fraction, seed=seed)


def dev_table(recipe: Recipe, taxonomy: Taxonomy) -> pd.DataFrame | None:
    """The recipe's dev split (``id, title, codes``); None for holdout 'none'.

    'onet-dev' is the dev split of the O*NET release the taxonomy was imported from (its
    ``source``); any other value is a dev table path.
    """
    spec = recipe.data.holdout
    if spec == "none":
        return None
    if spec != "onet-dev":
        from autocoder.io import read_table

        return read_table(Path(spec).expanduser(), string_columns=("id", "codes"))
    release = Path(taxonomy.source).expanduser() if taxonomy.source else None
    if release is None or not release.exists():
        raise RecipeError(
            f"holdout 'onet-dev' needs the O*NET release taxonomy {taxonomy.name!r} was imported "
            f"from, but {taxonomy.source!r} does not exist; import the taxonomy with --holdout "
            "or set data.holdout = <dev table>"
        )
    return _release_dev_split(
        release, fraction=recipe.data.holdout_fraction, seed=recipe.data.holdout_seed
    )


def holdout_set(recipe: Recipe, taxonomy: Taxonomy) -> tuple[set[str], str]:
    """The normalised dev titles to remove, and a description of where they came from."""
    from autocoder.devsplit import holdout_titles

    spec = recipe.data.holdout
    if spec == "onet-dev" and taxonomy.holdout:
        # imported with `autocoder taxonomy import onet PATH --holdout DEV`: already removed
        return set(), f"taxonomy import holdout: {taxonomy.holdout}"
    dev = dev_table(recipe, taxonomy)
    if dev is None:
        log.warning("recipe %s trains without a dev holdout", recipe.name)
        return set(), "none"
    if spec == "onet-dev":
        spec = f"onet-dev(fraction={recipe.data.holdout_fraction}, seed={recipe.data.holdout_seed})"
    return holdout_titles(dev), spec


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
    if recipe.data.paraphrases:
        from collections import Counter

        from autocoder.classify.data import paraphrase_rows

        counts = Counter(r["code"] for r in rows)
        for item in recipe.data.paraphrases:
            path = Path(item).expanduser()
            added = paraphrase_rows(
                read_table(path, string_columns=("id", "code")),
                counts,
                min_per_code=recipe.data.paraphrase_min_per_code,
                classes=classes,
                provenance=f"paraphrase:{path.stem}",
                source_name=str(path),
            )
            counts.update(r["code"] for r in added)
            rows += added
    return rows


def prepare_training_data(
    recipe: Recipe, taxonomy: Taxonomy, workspace: Workspace, *, holdout_info: str = ""
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
    recipe: Recipe,
    train: Any,
    taxonomy: Taxonomy,
    workspace: Workspace,
    *,
    show_progress: bool = False,
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
    """The recipe's (unfitted) classifier; validation comes from the recipe's own split."""
    emb, model, train = recipe.embedder, recipe.model, recipe.train
    return EmbeddingClassifier(
        embedder,
        embedder_batch_size=emb.batch_size,
        embedder_normalize=emb.normalize,
        embedder_device=emb.device,
        cache_dir=cache_dir,
        query_prefix=emb.query_prefix,
        input_format=model.input_format,
        text_style=model.text_style,
        classes=classes,
        hidden=model.hidden,
        layers=model.layers,
        dropout=model.dropout,
        input_dropout=model.input_dropout,
        loss=recipe.loss.name,
        loss_params=dict(recipe.loss.params),
        epochs=train.epochs,
        batch_size=train.batch_size,
        lr=train.lr,
        weight_decay=train.weight_decay,
        patience=train.patience,
        monitor=train.monitor,
        val_fraction=0.0,
        calibrate=recipe.calibration.temperature,
        conformal_alpha=recipe.calibration.conformal_alpha,
        conformal_method=recipe.calibration.conformal_method,
        seed=train.seed,
        verbose=verbose,
    )


def _fit(clf: EmbeddingClassifier, splits: Any) -> EmbeddingClassifier:
    train, val = splits["train"], splits["validation"]
    has_val = len(val) > 0
    return clf.fit(
        D.dataset_records(train),
        list(train["code"]),
        X_val=D.dataset_records(val) if has_val else None,
        y_val=list(val["code"]) if has_val else None,
        val_acceptable=D.acceptable_codes(val) if has_val else None,
    )


def _dataset_info(splits: Any, data_dir: Path) -> dict[str, Any]:
    train, val = splits["train"], splits["validation"]
    return {
        "path": str(data_dir),
        "train_fingerprint": D.fingerprint(train),
        "validation_fingerprint": D.fingerprint(val),
        "train_rows": len(train),
        "validation_rows": len(val),
    }


def train_from_recipe(
    recipe_path: str | Path | None,
    output_dir: str | Path,
    *,
    settings: Settings | None = None,
    workspace: Workspace,
    overrides: dict[str, Any] | None = None,
    show_progress: bool = False,
    embedder: Any = None,
) -> Path:
    """Train the recipe's classifier and save it to ``output_dir``; returns that directory.

    ``settings`` gives the default taxonomy and can switch the embedding cache off (it is used
    when both the recipe's and the settings' ``embedder.cache`` are on); ``overrides`` maps
    dotted recipe keys to values (``{"loss.name": "cross_entropy"}``); ``embedder``, an object
    with ``encode(texts)``, is used instead of loading (and fine-tuning) the recipe's model.
    """
    settings = settings or Settings()
    recipe = load_recipe(recipe_path, overrides)
    taxonomy = load_recipe_taxonomy(recipe, workspace, settings)
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
    use_cache = recipe.embedder.cache and settings.embedder.cache
    clf = make_classifier(
        recipe,
        embedder=embedder if embedder is not None else embedder_name,
        classes=taxonomy.leaf_codes(),
        cache_dir=workspace.embedding_cache if use_cache else None,
        verbose=show_progress,
    )
    _fit(clf, splits).metadata_ = {
        "recipe": recipe.model_dump(),
        "taxonomy": {"name": taxonomy.name, "version": taxonomy.version},
        "holdout": {"source": holdout_info, "titles": len(titles), "removed": removed},
        "dataset": _dataset_info(splits, data_dir),
        "embedder": embedder_name,
    }
    out = clf.save(output_dir)
    shutil.copyfile(recipe_path or default_recipe_path(), Path(out) / "recipe.toml")
    return Path(out)
