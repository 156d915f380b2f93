"""Training recipes (TOML in ``training/``) and ``train_from_recipe``, behind ``autocoder train``.

A recipe names everything a model is trained from: the workspace taxonomy and the dev holdout
removed from it, extra labeled / synthetic / feedback tables, the split, the embedder (the same
``EmbedderConfig`` section as the runtime settings; optionally fine-tuned), the network, the loss
and the calibration. ``train_from_recipe`` builds and saves the training set (Arrow, in the
workspace), fine-tunes the embedder when asked (saved under the workspace
``models/embedders``), trains the classifier and saves it as a model directory.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import re
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from autocoder.classify import data as D
from autocoder.classify.calibrate import DEFAULT_CONFORMAL_METHOD, ConformalMethod
from autocoder.classify.losses import LOSSES
from autocoder.classify.model import EmbeddingClassifier, HeadInit, render
from autocoder.config import EmbedderConfig, Settings
from autocoder.examples.store import example_key
from autocoder.records import InputFormat, JobRecord
from autocoder.taxonomy.model import Taxonomy
from autocoder.tomlfile import deep_merge, load_toml_model, read_toml
from autocoder.workspace import Workspace

log = logging.getLogger(__name__)

DEFAULT_RECIPE = "classifier.toml"
RECIPE_FILE = "recipe.toml"  # the recipe applied, saved next to a trained model


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
    sources: list[Literal["bls", "esco_crosswalk", "onet_crosswalk"]] = Field(
        default_factory=list,
        description="Extra real titles (classify.sources): 'bls' (BLS SOC 2018 direct-match "
        "titles), 'esco_crosswalk' (ESCO occupation labels through the ESCO-O*NET crosswalk, "
        "weighted by match type); for an ESCO taxonomy 'onet_crosswalk' (O*NET titles).",
    )
    sources_dir: str = Field(
        "",
        description="Folder whose subfolders hold the source files; '' = the folder of the "
        "O*NET release the taxonomy was imported from. A missing source is logged and skipped.",
    )
    examples: bool = Field(
        True,
        description="Train on the taxonomy's coded-examples store (`autocoder examples add`, "
        "`review pull`): one row per stored example (provenance examples:<source>), dev titles "
        "kept out, codes that are not classes counted and left out.",
    )
    examples_weight: float = Field(
        1.0, gt=0, description="An example row weighs its stored weight times this."
    )
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
    pairs_from: Literal["all", "examples"] = Field(
        "all",
        description="Train rows that become (record, code title) pairs: every row, or only the "
        "rows from the coded-examples store (an office's coded history, `data.examples`).",
    )
    objective: Literal["pairs", "codes"] = Field(
        "pairs",
        description="pairs: MNRL on (record, code title) pairs; codes: the embedder trained end "
        "to end as a classifier over the codes (a cosine-softmax head, saved beside it) on those "
        "records and every code's title and alternate titles, less those whose normalised title "
        "is in the validation split.",
    )
    repeats: int = Field(
        1,
        ge=1,
        description="objective codes: times each chosen train row is seen per epoch "
        "(the code titles once).",
    )


class ModelSection(_Section):
    input_format: InputFormat = "title_duties"
    text_style: Literal["plain", "mom"] = "plain"
    hidden: int = Field(512, ge=0)
    layers: int = Field(1, ge=1)
    dropout: float = Field(0.1, ge=0, lt=1)
    input_dropout: float = Field(0.0, ge=0, lt=1)
    head_init: HeadInit = Field(
        "random",
        description="embedder: a linear network (hidden = 0) starts at the code head the "
        "embedder was fine-tuned with (finetune.objective = 'codes'), and validation from epoch "
        "0 on decides how far training moves it; random: a fresh network.",
    )


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
    refit: bool = Field(
        False,
        description="After the dev figures, train the shipped network anew on every row "
        "(validation rows and dev titles too) for the best epoch count; the temperature and "
        "conformal threshold of the first fit are kept.",
    )


class CalibrationSection(_Section):
    temperature: bool = True
    conformal_alpha: float | None = Field(0.1, gt=0, lt=1)
    conformal_method: ConformalMethod = DEFAULT_CONFORMAL_METHOD
    noisy_validation: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Add posting-noise copies (autocoder.devsplit, through the title normaliser) of "
        "this share of the validation titles, so temperature, conformal threshold and early "
        "stopping also see titles as users send them.",
    )


class CombineSection(_Section):
    retrieval_weight: float = Field(
        0.0,
        ge=0,
        le=1,
        description="`autocoder code --model` mixes this much of retrieval's probabilities "
        "into the model's (autocoder.coding.mixture); 0 = the model alone.",
    )


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
    combine: CombineSection = Field(default_factory=CombineSection)

    @model_validator(mode="after")
    def _head_from_finetuning(self) -> Recipe:
        if self.model.head_init != "embedder":
            return self
        problems = [
            text
            for bad, text in (
                (not self.finetune.enabled, "finetune.enabled = true"),
                (self.finetune.objective != "codes", "finetune.objective = 'codes'"),
                (self.model.hidden != 0, "model.hidden = 0"),
                (not self.embedder.normalize, "embedder.normalize = true"),
            )
            if bad
        ]
        if problems:
            raise ValueError("model.head_init = 'embedder' needs " + ", ".join(problems))
        return self


class RecipeError(ValueError):
    """A recipe file is missing or invalid."""


def default_recipe_path() -> Path:
    from autocoder.resources import resource_dir

    return resource_dir("training") / DEFAULT_RECIPE


def resolve_recipe(spec: str | Path | None) -> Path:
    """A recipe file: ``spec`` itself when it is a file, else the packaged recipe of that name
    (``esco`` or ``esco.toml`` in ``training/``); the packaged default when ``spec`` is None."""
    from autocoder.resources import resource_dir

    if spec is None:
        return default_recipe_path()
    path = Path(spec).expanduser()
    if path.is_file() or path.parent != Path("."):
        return path
    packaged = resource_dir("training")
    found = packaged / (path.name if path.suffix == ".toml" else f"{path.name}.toml")
    if not found.is_file():
        names = sorted(p.stem for p in packaged.glob("*.toml"))
        raise RecipeError(f"recipe {str(spec)!r}: no such file, nor a packaged recipe {names}")
    return found


def _base_path(base: Any, recipe_file: Path) -> Path:
    """The file a recipe's ``base`` names: a path (``x.toml``, ``dir/x``) relative to the
    recipe's own folder, else a packaged recipe's name."""
    if not isinstance(base, str) or not base.strip():
        raise RecipeError(
            f"recipe {recipe_file}: base must be a packaged recipe's name or a TOML path, "
            f"not {base!r}"
        )
    given = Path(base).expanduser()
    if given.suffix == ".toml" or given.parent != Path("."):
        found = given if given.is_absolute() else recipe_file.parent / given
        if not found.is_file():
            raise RecipeError(f"recipe {recipe_file}: its base {base!r} is not a file ({found})")
        return found
    try:
        return resolve_recipe(given.name)
    except RecipeError as exc:
        raise RecipeError(f"recipe {recipe_file}: base {base!r}: {exc}") from None


def read_recipe_table(path: Path, *, chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The parsed recipe at ``path`` with its ``base`` resolved: a recipe may start with
    ``base = "classifier"`` (a packaged recipe's name, or a TOML path relative to its folder) and
    then give its own ``name`` and ``description`` and only what differs; its tables are merged
    key by key over the base's (``tomlfile.deep_merge``), recursively. A cycle of bases is an
    error naming the chain."""
    here = path.resolve()
    if here in chain:
        names = " -> ".join(p.name for p in (*chain, here))
        raise RecipeError(f"recipe {path}: its bases form a cycle ({names})")
    raw = read_toml(path, error=RecipeError, what="recipe")
    if "base" not in raw:
        return raw
    base = _base_path(raw.pop("base"), path)
    missing = [key for key in ("name", "description") if key not in raw]
    if missing:  # else a model trained from it would describe itself as its base
        raise RecipeError(f"recipe {path}: a recipe with a base must give its own {missing}")
    return deep_merge(read_recipe_table(base, chain=(*chain, here)), raw)


def load_recipe(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Recipe:
    """Read a TOML recipe: a file, a packaged recipe's name (``esco``), or the default (None);
    its ``base``, when it names one, is read first (``read_recipe_table``)."""
    path = resolve_recipe(path)
    return load_toml_model(
        path,
        Recipe,
        error=RecipeError,
        what="recipe",
        overrides=overrides,
        raw=read_recipe_table(path),
    )


# --- pieces of the pipeline -------------------------------------------------------------------
def load_recipe_taxonomy(
    recipe: Recipe, workspace: Workspace, settings: Settings | None = None
) -> Taxonomy:
    """The workspace taxonomy the recipe names (the settings' default when it names none)."""
    from autocoder.taxonomy.store import load_taxonomy

    name = recipe.data.taxonomy or (settings or Settings()).taxonomy.default
    return load_taxonomy(workspace, name)


def dev_table(recipe: Recipe, taxonomy: Taxonomy) -> pd.DataFrame | None:
    """The recipe's dev split (``id, title, codes``); None for holdout 'none'.

    'onet-dev' is the dev split of the O*NET release the taxonomy was imported from (its
    ``source``); any other value is a dev table path.
    """
    from autocoder.io import read_table

    spec = recipe.data.holdout
    if spec == "none":
        return None
    if spec != "onet-dev":
        return read_table(Path(spec).expanduser(), string_columns=("id", "codes"))
    if taxonomy.holdout:  # imported with --holdout DEV: that table is the dev split
        path = Path(taxonomy.holdout_file) if taxonomy.holdout_file else None
        if path is None or not path.is_file():
            log.warning(
                "taxonomy %s was imported with a holdout (%s) whose table is not at hand: no dev "
                "figures, and a refit cannot add the dev titles",
                taxonomy.name,
                taxonomy.holdout,
            )
            return None
        return read_table(path, string_columns=("id", "codes"))
    release = Path(taxonomy.source).expanduser() if taxonomy.source else None
    if release is None or not release.exists():
        raise RecipeError(
            f"holdout 'onet-dev' needs the O*NET release taxonomy {taxonomy.name!r} was imported "
            f"from, but {taxonomy.source!r} does not exist; import the taxonomy with --holdout "
            "or set data.holdout = <dev table>"
        )
    from autocoder.devsplit import release_dev_split

    return release_dev_split(
        release, fraction=recipe.data.holdout_fraction, seed=recipe.data.holdout_seed
    )


def dev_holdout(recipe: Recipe, taxonomy: Taxonomy) -> tuple[pd.DataFrame | None, set[str], str]:
    """The dev table, its normalised titles (to keep out of everything trained on) and a
    description of where they came from."""
    from autocoder.devsplit import holdout_titles

    spec = recipe.data.holdout
    dev = dev_table(recipe, taxonomy)
    titles = holdout_titles(dev) if dev is not None else set()
    if spec == "onet-dev" and taxonomy.holdout:
        # imported with `autocoder taxonomy import onet PATH --holdout DEV`: already removed
        # from the taxonomy; the titles still keep the extra sources clean
        return dev, titles, f"taxonomy import holdout: {taxonomy.holdout}"
    if dev is None:
        log.warning("recipe %s trains without a dev holdout", recipe.name)
        return None, set(), "none"
    if spec == "onet-dev":
        spec = f"onet-dev(fraction={recipe.data.holdout_fraction}, seed={recipe.data.holdout_seed})"
    return dev, titles, spec


def holdout_set(recipe: Recipe, taxonomy: Taxonomy) -> tuple[set[str], str]:
    """The normalised dev titles to remove, and a description of where they came from."""
    _, titles, info = dev_holdout(recipe, taxonomy)
    return titles, info


def _source_file(root: Path, name: str) -> Path | None:
    """``root/name`` or ``root/<subfolder>/name`` (the first, sorted), None when absent."""
    if (root / name).is_file():
        return root / name
    return next(iter(sorted(root.glob(f"*/{name}"))), None)


def sources_root(recipe: Recipe, taxonomy: Taxonomy) -> Path | None:
    if recipe.data.sources_dir:
        return Path(recipe.data.sources_dir).expanduser()
    return Path(taxonomy.source).expanduser().parent if taxonomy.source else None


def source_tables(recipe: Recipe, taxonomy: Taxonomy, holdout: set[str]) -> list[pd.DataFrame]:
    """The recipe's extra sources as ``classify.sources`` tables; a source whose files are not
    found is logged and skipped (the model's metadata counts each source's rows)."""
    from autocoder.classify import sources as S
    from autocoder.classify import sources_esco as SE

    root = sources_root(recipe, taxonomy)
    codes, tables = taxonomy.leaf_codes(), []
    for name in recipe.data.sources:
        files = {
            "bls": [S.BLS_FILE],
            "esco_crosswalk": [S.CROSSWALK_FILE, S.ESCO_OCCUPATIONS_FILE],
            "onet_crosswalk": list(SE.ONET_CROSSWALK_FILES),
        }[name]
        found = [_source_file(root, f) if root else None for f in files]
        if any(f is None for f in found):
            log.warning(
                "recipe %s: source %s skipped: %s not found under %s",
                recipe.name,
                name,
                ", ".join(files),
                root,
            )
            continue
        paths = [f.parent for f in found if f is not None]
        if name == "bls":
            table = S.bls_titles(paths[0], codes, holdout=holdout)
        elif name == "esco_crosswalk":
            table = S.esco_titles(paths[0], paths[1], codes, holdout=holdout)
        else:  # O*NET titles for an ESCO taxonomy
            table = SE.onet_titles_for_esco(paths[1], paths[0], taxonomy, holdout=holdout)
        tables.append(table)
    return tables


def stored_examples(
    recipe: Recipe, taxonomy: Taxonomy, workspace: Workspace, *, holdout: set[str] | None = None
) -> D.ExampleRows | None:
    """The taxonomy's coded examples (the workspace's examples store) as training rows, without
    the ``holdout`` titles; None when the recipe says ``data.examples = false``."""
    from autocoder.examples.store import ExampleStore

    if not recipe.data.examples:
        return None
    store = ExampleStore.of(workspace, taxonomy.name)
    found = D.example_rows(
        store.table(),
        classes=taxonomy.leaf_codes(),
        weight=recipe.data.examples_weight,
        holdout=holdout or set(),
    )
    found.content_hash = store.content_hash()
    if found.unknown_code:
        log.warning(
            "recipe %s: %d stored examples left out, their codes are not leaf codes of %s %s: %s",
            recipe.name,
            found.unknown_code,
            taxonomy.name,
            taxonomy.version,
            ", ".join(found.unknown_codes[:10]),
        )
    return found


def examples_meta(
    examples: D.ExampleRows | None, splits: Any, *, also_trained: Iterable[str] = ()
) -> dict[str, Any]:
    """What a model records of the stored examples it trained on: the store's content hash,
    the counts (``ExampleRows.summary``), the example rows in each split and the digests of the
    validation examples' titles it never trained on (``untrained_keys``, which ``examples fit``
    holds out)."""
    if examples is None:
        return {"enabled": False}
    used = D.example_counts(splits)
    return {
        "enabled": True,
        **examples.summary(),
        "train_rows": used.get("train", 0),
        "validation_rows": used.get("validation", 0),
        "untrained_keys": D.untrained_example_keys(splits, also_trained=also_trained),
    }


def build_rows(
    recipe: Recipe,
    taxonomy: Taxonomy,
    *,
    holdout: set[str] | None = None,
    examples: D.ExampleRows | None = None,
) -> list[dict[str, Any]]:
    """Every training row the recipe names (taxonomy first, then the extra sources without
    the ``holdout`` titles, then the extra tables, then the stored ``examples`` rows)."""
    from autocoder.io import read_table

    rows = D.taxonomy_rows(
        taxonomy,
        kinds=recipe.data.kinds,
        title_duties_pairs=recipe.data.title_duties_pairs,
        seed=recipe.data.seed,
    )
    classes = taxonomy.leaf_codes()
    for table in source_tables(recipe, taxonomy, holdout or set()):
        rows += D.source_rows(table, classes=classes)
    for kind in ("labeled", "synthetic", "feedback"):
        for item in getattr(recipe.data, kind):
            path = Path(item).expanduser()
            rows += D.table_rows(
                read_table(path, string_columns=("code",)),
                provenance=f"{kind}:{path.stem}",
                classes=classes,
                source_name=str(path),
            )
    if examples is not None:
        rows += examples.rows
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
    recipe: Recipe,
    taxonomy: Taxonomy,
    workspace: Workspace,
    *,
    holdout_info: str = "",
    holdout: set[str] | None = None,
    examples: D.ExampleRows | None = None,
) -> tuple[Any, Path]:
    """Build, split, resample and save the training set; returns ``(DatasetDict, dir)``.
    ``holdout`` (normalised dev titles) is kept out of the extra sources; ``examples`` (from
    ``stored_examples``, the holdout already applied) are added as rows."""
    full = D.build_dataset(build_rows(recipe, taxonomy, holdout=holdout, examples=examples))
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
                "examples": examples.summary() if examples is not None else None,
            },
        )
    return splits, target


def label_titles(code: Any) -> list[str]:
    """A leaf's preferred and alternative titles: what the codes objective fine-tunes on."""
    return [t for t in (code.title, *code.alt_titles) if t.strip()]


def finetune_label_rows(
    recipe: Recipe, taxonomy: Taxonomy, *, held_out: Iterable[str] = ()
) -> list[tuple[str, str]]:
    """The (title, code) rows the recipe's embedder is fine-tuned on besides the train split:
    for the codes objective every leaf's labels less those whose normalised title is one of
    ``held_out`` (the validation split's titles, so that the head's temperature and its
    epoch-0 choice are fitted on titles the fine-tuning never saw); none otherwise."""
    ft = recipe.finetune
    if not (ft.enabled and ft.objective == "codes"):
        return []
    held = {example_key(t) for t in held_out}
    return [
        (t, c.code)
        for c in taxonomy.leaves()
        for t in label_titles(c)
        if example_key(t) not in held
    ]


def finetune_labels(
    recipe: Recipe, taxonomy: Taxonomy, *, held_out: Iterable[str] = ()
) -> list[str]:
    """The titles of ``finetune_label_rows``."""
    return [t for t, _ in finetune_label_rows(recipe, taxonomy, held_out=held_out)]


def finetune_for_recipe(
    recipe: Recipe,
    train: Any,
    taxonomy: Taxonomy,
    workspace: Workspace,
    *,
    held_out: Sequence[str] = (),
    show_progress: bool = False,
) -> Path:
    """Fine-tune the recipe's embedder on the train split (reused when already done); the
    codes objective also on the taxonomy's labels, less those among ``held_out`` (the
    validation split's titles)."""
    from autocoder.classify.codehead import HEAD_FILE
    from autocoder.classify.finetune import (
        META_FILE,
        Pairs,
        finetune_code_classifier,
        finetune_embedder,
        round_robin_order,
    )

    ft = recipe.finetune
    leaves = taxonomy.leaves()
    titles = {c.code: c.title for c in leaves}
    codes = list(train["code"])
    order = round_robin_order(codes, seed=ft.epochs + recipe.data.seed)
    if ft.pairs_from == "examples":
        provenance = list(train["provenance"])
        order = [i for i in order if str(provenance[i]).startswith(D.EXAMPLES_PREFIX)]
        if len(order) < 2:
            raise ValueError(
                f"recipe {recipe.name}: finetune.pairs_from = 'examples' but the train split "
                f"holds {len(order)} example rows (add examples with `autocoder examples add`)"
            )
    order = order[: ft.max_pairs]
    records = D.dataset_records(train)
    anchors = [
        render(
            records[i], input_format=recipe.model.input_format, text_style=recipe.model.text_style
        )
        for i in order
    ]
    positives = [titles[codes[i]] for i in order]
    label_rows = finetune_label_rows(recipe, taxonomy, held_out=held_out)
    if ft.objective == "codes":
        kept = {c for _, c in label_rows} | {codes[i] for i in order}
        emptied = [c.code for c in leaves if label_titles(c) and c.code not in kept]
        if emptied:
            log.warning(
                "recipe %s: %d code(s) have no fine-tuning text (their labels are all "
                "validation titles and no chosen train row has them): %s",
                recipe.name,
                len(emptied),
                ", ".join(emptied[:10]) + (" ..." if len(emptied) > 10 else ""),
            )
    key = hashlib.sha1(
        json.dumps(
            [recipe.embedder.model, D.fingerprint(train), ft.model_dump(), recipe.model.text_style]
            + (
                [{"labels": hashlib.sha1(json.dumps(label_rows).encode()).hexdigest()}]
                if ft.objective == "codes"
                else []
            )
        ).encode()
    ).hexdigest()[:12]
    target = Path(workspace.models) / "embedders" / f"{ft.name}-{key}"
    if (target / META_FILE).exists() and (ft.objective != "codes" or (target / HEAD_FILE).exists()):
        log.info("reusing fine-tuned embedder %s", target)
        return target
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    common: dict[str, Any] = {
        "base_model": recipe.embedder.model,
        "output_dir": tmp,
        "options": ft,
        "seed": recipe.train.seed,
        "show_progress": show_progress,
        "meta": {"train_fingerprint": D.fingerprint(train)},
    }
    if ft.objective == "codes":
        common["meta"]["label_rows"] = len(label_rows)
        texts = anchors * ft.repeats + [t for t, _ in label_rows]
        text_codes = [codes[i] for i in order] * ft.repeats + [c for _, c in label_rows]
        finetune_code_classifier(texts, text_codes, **common)
    else:
        finetune_embedder(Pairs(anchors, positives, [codes[i] for i in order]), **common)
    shutil.rmtree(target, ignore_errors=True)  # one from before the head was saved
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
        head_init=model.head_init,
        seed=train.seed,
        verbose=verbose,
    )


def validation_rows(
    val: Any, *, noisy_share: float, seed: int
) -> tuple[list[JobRecord], list[str], list[list[str]]]:
    """Validation records, codes and acceptable codes; plus, for ``noisy_share`` of the title
    rows (seeded), a copy with posting noise as the coder would see it (normalised)."""
    from autocoder.devsplit import noisy_titles
    from autocoder.titles import clean_title

    records, codes = D.dataset_records(val), list(val["code"])
    acceptable = D.acceptable_codes(val)
    titled = [i for i, r in enumerate(records) if r.title and not r.duties]
    rng = np.random.default_rng(seed)
    picked = sorted(rng.choice(titled, size=round(len(titled) * noisy_share), replace=False))
    noisy = noisy_titles([records[i].title for i in picked], seed=seed)
    records += [JobRecord(clean_title(t)) for t in noisy]
    codes += [codes[i] for i in picked]
    acceptable += [acceptable[i] for i in picked]
    return records, codes, acceptable


def _fit(clf: EmbeddingClassifier, splits: Any, recipe: Recipe) -> EmbeddingClassifier:
    train, val = splits["train"], splits["validation"]
    X_val = y_val = acceptable = None
    if len(val) > 0:
        X_val, y_val, acceptable = validation_rows(
            val, noisy_share=recipe.calibration.noisy_validation, seed=recipe.data.seed
        )
    return clf.fit(
        D.dataset_records(train),
        list(train["code"]),
        X_val=X_val,
        y_val=y_val,
        val_acceptable=acceptable,
        sample_weight=D.row_weights(train),
    )


MIN_MIXTURE_ROWS = 200


def fit_combination(
    clf: EmbeddingClassifier, retrieval: Any, val: Any, recipe: Recipe
) -> dict[str, Any]:
    """Fit the model + retrieval mixture on the validation titles from the extra sources (in
    neither the network's training rows nor the index) and their noisy copies; with fewer than
    ``MIN_MIXTURE_ROWS`` of them, the recipe's weight uncalibrated."""
    from autocoder.coding.mixture import fit_on

    held = [i for i, p in enumerate(val["provenance"]) if p.startswith("source:")]
    if len(held) < MIN_MIXTURE_ROWS:
        log.warning("only %d held-out source titles: mixture weight from the recipe", len(held))
        return {
            "retrieval_weight": recipe.combine.retrieval_weight,
            "temperature": 1.0,
            "conformal_threshold": None,
            "fitted_on": "recipe",
        }
    records, codes, acceptable = validation_rows(
        val.select(held), noisy_share=1.0, seed=recipe.data.seed
    )
    gold = [
        tuple(a) if code in a else (code, *a) for code, a in zip(codes, acceptable, strict=True)
    ]
    fitted = fit_on(clf, retrieval, records, gold, **_conformal(recipe))
    fitted["fitted_on"] = f"{len(held)} held-out source titles + their noisy copies"
    return fitted


def _conformal(recipe: Recipe) -> dict[str, Any]:
    cal = recipe.calibration
    return {"alpha": cal.conformal_alpha, "method": cal.conformal_method}


def evaluate_first_fit(
    clf: EmbeddingClassifier,
    recipe: Recipe,
    val: Any,
    dev: pd.DataFrame | None,
    retrieval: Any,
    *,
    dev_in_index: bool = True,
) -> dict[str, Any]:
    """Metadata from the model before any refit: its dev figures, and with ``retrieval`` the
    fitted mixture (``combine``: on the dev titles when the index does not hold them, with
    cross-fitted dev figures; else on the source titles) and the mixture's dev figures."""
    from autocoder.devsplit import dev_figures

    meta: dict[str, Any] = {}
    if dev is not None:
        meta["dev"] = dev_figures(clf, dev)
        log.info("dev figures (before any refit): %s", meta["dev"])
    if retrieval is None or recipe.combine.retrieval_weight <= 0:
        return meta
    if dev is not None and not dev_in_index:
        from autocoder.coding.mixture import fit_on_dev

        meta["combine"], meta["dev_combined"] = fit_on_dev(
            clf, retrieval, dev, **_conformal(recipe)
        )
        meta["combine"]["fitted_on"] = f"{len(dev)} dev titles + their noisy copies"
        meta["dev_combined"]["cross_fitted"] = True
    else:
        from autocoder.coding.mixture import CombinedPredictor, mixture_params

        meta["combine"] = fit_combination(clf, retrieval, val, recipe)
        if dev is not None:
            mixed = CombinedPredictor(clf, retrieval, **mixture_params(meta["combine"])).fit()
            meta["dev_combined"] = dev_figures(mixed, dev)
    meta["combine"]["retrieval"] = retrieval.describe()  # the retrieval it was fitted with
    log.info("model + retrieval mixture: %s; dev: %s", meta["combine"], meta.get("dev_combined"))
    return meta


def dev_rows(dev: pd.DataFrame, classes: list[str]) -> list[dict[str, Any]]:
    """The dev titles as training rows (one per right code), for the refit."""
    known = set(classes)
    table = pd.DataFrame(
        [
            {"title": t, "code": c}
            for t, codes in zip(dev["title"], dev["codes"], strict=True)
            for c in str(codes).split(";")
            if c in known
        ],
        columns=["title", "code"],
    )
    return D.table_rows(table, provenance="dev", classes=classes, source_name="dev split")


def refit_on_all(
    clf: EmbeddingClassifier,
    recipe: Recipe,
    taxonomy: Taxonomy,
    dev: pd.DataFrame | None,
    workspace: Workspace | None = None,
) -> EmbeddingClassifier:
    """A copy of ``clf`` trained anew on every row of the full ``taxonomy`` (no holdout), the
    sources and tables, the ``workspace``'s stored examples (dev titles too) and the dev
    titles, for ``clf``'s best epoch count, with ``clf``'s temperature and conformal threshold
    (there is nothing left to calibrate on)."""
    from sklearn.base import clone

    examples = stored_examples(recipe, taxonomy, workspace) if workspace is not None else None
    rows = build_rows(recipe, taxonomy, examples=examples)
    if dev is not None:
        rows += dev_rows(dev, taxonomy.leaf_codes())
    full = D.build_dataset(rows)
    # a network started at the code head whose best epoch was 0 is refit as that head: no epoch
    epochs = int(clf.history_.best_epoch)
    epochs = epochs if clf.head_init == "embedder" else max(1, epochs)
    final = clone(clf).set_params(
        epochs=epochs, val_fraction=0.0, calibrate=False, conformal_alpha=None
    )
    final.fit(D.dataset_records(full), list(full["code"]), sample_weight=D.row_weights(full))
    final.temperature_ = clf.temperature_
    final.conformal_threshold_ = clf.conformal_threshold_
    final.set_params(calibrate=clf.calibrate, conformal_alpha=clf.conformal_alpha)
    final.refit_ = {
        "rows": len(full),
        "epochs": epochs,
        "fingerprint": D.fingerprint(full),
        "example_rows": D.example_counts({"all": full})["all"],
    }
    return final


def portable_path(value: str) -> str:
    """``value`` as a saved model may record it: a path that names this machine (absolute,
    from the home directory or above the working directory) becomes its file name."""
    path = Path(value)
    if path.is_absolute() or value.startswith("~") or ".." in path.parts:
        return path.name
    return value


def portable_text(text: str) -> str:
    """``text`` with every absolute path in it shortened to its file name."""
    return re.sub(r"(?<!\S)[/~]\S*", lambda m: Path(m.group()).name, text)


def applied_recipe(recipe: Recipe, fitted: dict[str, Any] | None) -> Recipe:
    """The recipe as the trained model applies it: overrides included, and ``[combine]`` gives
    the retrieval weight fitted at train time (what ``autocoder code`` mixes with). Input
    table paths stay as given (``review retrain`` rebuilds the training data from them)."""
    if not fitted or "retrieval_weight" not in fitted:
        return recipe
    weight = float(fitted["retrieval_weight"])
    return recipe.model_copy(
        update={"combine": recipe.combine.model_copy(update={"retrieval_weight": weight})}
    )


def save_recipe(recipe: Recipe, directory: Path) -> Path:
    """``directory/recipe.toml``: the recipe applied (``applied_recipe``), as TOML."""
    from autocoder.tomlfile import dump_toml

    header = (
        f"The recipe {recipe.name!r} as applied to this model (overrides included; [combine]\n"
        "retrieval_weight: the weight fitted at train time). `autocoder train --recipe` reads it."
    )
    path = directory / RECIPE_FILE
    path.write_text(dump_toml(recipe.model_dump(), header=header))
    return path


def _dataset_info(splits: Any, data_dir: Path, workspace: Workspace) -> dict[str, Any]:
    train, val = splits["train"], splits["validation"]
    root = Path(workspace.root).resolve()
    inside = data_dir.resolve().is_relative_to(root)
    return {
        "path": str(data_dir.resolve().relative_to(root)) if inside else data_dir.name,
        "train_fingerprint": D.fingerprint(train),
        "validation_fingerprint": D.fingerprint(val),
        "train_rows": len(train),
        "validation_rows": len(val),
    }


def _embedder_name(
    recipe: Recipe,
    embedder: Any,
    splits: Any,
    taxonomy: Taxonomy,
    workspace: Workspace,
    show_progress: bool,
) -> str:
    """The recipe's embedder, fine-tuned first when the recipe asks (and none was given)."""
    if recipe.finetune.enabled and embedder is None:
        return str(
            finetune_for_recipe(
                recipe,
                splits["train"],
                taxonomy,
                workspace,
                held_out=list(splits["validation"]["title"]),
                show_progress=show_progress,
            )  # fmt: skip
        )
    return recipe.embedder.model


def _holdout_meta(info: str, titles: set[str], removed: int) -> dict[str, Any]:
    """Where the dev titles came from (no machine path), how many, how many were removed."""
    return {"source": portable_text(info), "titles": len(titles), "removed": removed}


def _cache_dir(recipe: Recipe, settings: Settings, workspace: Workspace) -> Path | None:
    """The workspace's embedding cache when both the recipe's and the settings' cache are on."""
    use_cache = recipe.embedder.cache and settings.embedder.cache
    return Path(workspace.embedding_cache) if use_cache else None


def train_from_recipe(
    recipe_path: str | Path | None,
    output_dir: str | Path,
    *,
    settings: Settings | None = None,
    workspace: Workspace,
    overrides: dict[str, Any] | None = None,
    show_progress: bool = False,
    embedder: Any = None,
    retrieval: Any = None,
) -> Path:
    """Train the recipe's classifier and save it to ``output_dir``; returns that directory.

    ``settings`` gives the default taxonomy and can switch the embedding cache off (it is used
    when both the recipe's and the settings' ``embedder.cache`` are on); ``overrides`` maps
    dotted recipe keys to values (``{"loss.name": "cross_entropy"}``); ``embedder``, an object
    with ``encode(texts)``, is used instead of loading (and fine-tuning) the recipe's model.
    ``retrieval`` (a fitted retrieval coder, index without dev titles): see evaluate_first_fit.
    """
    from autocoder.devsplit import apply_holdout

    settings = settings or Settings()
    recipe = load_recipe(recipe_path, overrides)
    taxonomy = load_recipe_taxonomy(recipe, workspace, settings)
    dev, titles, holdout_info = dev_holdout(recipe, taxonomy)
    everything = copy.deepcopy(taxonomy) if recipe.train.refit else taxonomy
    removed = apply_holdout(taxonomy, titles) if titles else 0
    examples = stored_examples(recipe, taxonomy, workspace, holdout=titles)
    splits, data_dir = prepare_training_data(
        recipe, taxonomy, workspace, holdout_info=holdout_info, holdout=titles, examples=examples
    )
    embedder_name = _embedder_name(recipe, embedder, splits, taxonomy, workspace, show_progress)
    clf = make_classifier(
        recipe,
        embedder=embedder if embedder is not None else embedder_name,
        classes=taxonomy.leaf_codes(),
        cache_dir=_cache_dir(recipe, settings, workspace),
        verbose=show_progress,
    )
    _fit(clf, splits, recipe)
    meta: dict[str, Any] = {
        "taxonomy": {"name": taxonomy.name, "version": taxonomy.version},
        "holdout": _holdout_meta(holdout_info, titles, removed),
        "dataset": _dataset_info(splits, data_dir, workspace),
        "embedder": portable_path(embedder_name),
        "examples": examples_meta(
            examples,
            splits,
            also_trained=finetune_labels(
                recipe, taxonomy, held_out=list(splits["validation"]["title"])
            ),
        ),  # fmt: skip
    }
    first = evaluate_first_fit(
        clf, recipe, splits["validation"], dev, retrieval, dev_in_index=not taxonomy.holdout
    )
    meta.update(first)
    applied = applied_recipe(recipe, first.get("combine"))
    meta = {"recipe": applied.model_dump(), **meta}
    if recipe.train.refit:
        clf = refit_on_all(clf, recipe, everything, dev, workspace)
        meta["refit"] = clf.refit_
        if meta["examples"].get("enabled"):  # the refit trained on every stored example
            meta["examples"]["untrained_keys"] = []
    clf.metadata_ = meta
    out = Path(clf.save(output_dir))
    save_recipe(applied, out)
    return out
