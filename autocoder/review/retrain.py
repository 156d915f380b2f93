"""Retrain a classifier on what reviewers answered: ``autocoder retrain --model DIR --output DIR2``.

The pulled feedback (``autocoder.review.queue.load_feedback``) becomes training rows next to the
model's own training set (the saved Arrow dataset, or rebuilt from the recipe recorded in the
model). Rows marked *cannot code* or *new / emerging* and rows without a code are left out and
counted; a code that is not a class of the model (a group node a reviewer picked in the
Taxonomy tree, such as ``29-1140``, or an unknown code) is reported and skipped; several
annotators of one record vote (ties: the latest answer). A reviewed real record weighs
``feedback_weight`` times a taxonomy text (``DEFAULT_FEEDBACK_WEIGHT``, chosen with
``benchmarks/active_learning.py``; pass more weight and epochs to make the answers stick).

The taxonomy's coded-examples store (``autocoder examples add``) joins the base rows, each
example weighing its stored weight times the recipe's ``data.examples_weight``: the store as
it is now replaces the example rows of the model's own training set; an example ``review pull``
made from the feedback used here (source ``review:<project>``, or the same normalised title and
code as a feedback row) is left out, so no answer counts twice; a dev title's example is left
out too (the after figures stay honest).

A model refit on everything (``train.refit``, as the packaged one is) was trained on its
recipe's dev titles too; they stay training rows (``refit_dev_rows``), or the retrained model
would forget them, and the before/after figures on them are marked as seen titles.

Training starts from DIR's weights (``warm_start``) for a few epochs; temperature and conformal
threshold are refitted on the validation split. DIR2 is a normal model directory whose
``config.json`` metadata records the feedback it saw (count, projects, a hash of the record ids
and codes) and the weight. Before/after top-1, top-5 and ECE are measured on the dev split (the
recipe's held-out real titles, or ``--dev FILE``), leaving out dev titles that were reviewed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from autocoder.config import Settings
from autocoder.records import JobRecord, clean_text, normalize_text
from autocoder.workspace import Workspace

if TYPE_CHECKING:
    from autocoder.classify.data import ExampleRows

log = logging.getLogger(__name__)

DEFAULT_FEEDBACK_WEIGHT = 5.0
DEFAULT_EPOCHS = 10
DEFAULT_LR_SCALE = 0.25  # fine-tuning rate: a quarter of the model's own
_TRUE = {"1", "true", "yes", "y", "t"}


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in _TRUE
    return bool(value) if value is not None and value == value else False


@dataclass
class FeedbackRows:
    """Usable feedback (one row per reviewed record) and what was left out."""

    rows: pd.DataFrame  # project, id, title, description, code
    counts: dict[str, int] = field(default_factory=dict)
    unknown_codes: list[str] = field(default_factory=list)
    projects: list[str] = field(default_factory=list)

    @property
    def ids_hash(self) -> str:
        keys = sorted(
            f"{p}\x00{i}\x00{c}" for p, i, c in self.rows[["project", "id", "code"]].values
        )
        return hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16]

    def records(self) -> list[JobRecord]:
        return [
            JobRecord(t, d)
            for t, d in zip(self.rows["title"], self.rows["description"], strict=True)
        ]

    def summary(self) -> dict[str, Any]:
        return {
            **self.counts,
            "projects": self.projects,
            "unknown_codes": self.unknown_codes,
            "ids_hash": self.ids_hash,
        }


def _vote(group: pd.DataFrame) -> pd.Series:
    """One answer per record: the most frequent code, ties broken by the latest answer."""
    counts = group["code"].value_counts()
    best = counts[counts == counts.max()].index
    latest = group[group["code"].isin(best)].sort_values("created_at").iloc[-1]
    return latest


def feedback_rows(feedback: pd.DataFrame, classes: Any) -> FeedbackRows:
    """Filter and deduplicate pulled feedback for training against ``classes``."""
    needed = {"id", "title", "code"}
    missing = needed - set(feedback.columns)
    if missing:
        raise ValueError(f"feedback lacks columns {sorted(missing)}; has {list(feedback.columns)}")
    df = feedback.copy()
    for col, default in (("description", ""), ("project", ""), ("created_at", "")):
        df[col] = df[col].map(clean_text) if col in df.columns else default
    df["id"], df["title"], df["code"] = (df[c].map(clean_text) for c in ("id", "title", "code"))
    cannot = df["cannot_code"].map(_flag) if "cannot_code" in df.columns else False
    emerging = df["emerging"].map(_flag) & ~cannot if "emerging" in df.columns else False
    no_code = (df["code"] == "") & ~cannot & ~emerging
    counts = {
        "answers": int(len(df)),
        "cannot_code": int(np.sum(cannot)),
        "emerging": int(np.sum(emerging)),
        "no_code": int(np.sum(no_code)),
    }
    df = df[~(cannot | emerging | no_code)]
    empty = df[(df["title"] == "") & (df["description"] == "")]
    if len(empty):
        first = empty.iloc[0]
        raise ValueError(
            f"feedback record {first['id']!r} (project {first['project']!r}) has no title or "
            "description to train on"
        )
    known = {str(c) for c in classes}
    unknown = df[~df["code"].isin(known)]
    counts["unknown_code"] = int(len(unknown))
    df = df[df["code"].isin(known)]
    voted = [_vote(g) for _, g in df.groupby(["project", "id"], sort=True)]
    rows = pd.DataFrame(voted, columns=df.columns).reset_index(drop=True)
    counts["conflicting_records"] = int(
        sum(g["code"].nunique() > 1 for _, g in df.groupby(["project", "id"]))
    )
    counts["used"] = int(len(rows))
    return FeedbackRows(
        rows[["project", "id", "title", "description", "code"]],
        counts,
        sorted(set(unknown["code"])),
        sorted(set(rows["project"])),
    )


# --- the model's own training data and dev split ----------------------------------------------
def _recipe_of(model: Any) -> Any:
    from autocoder.classify.recipe import Recipe

    raw = (getattr(model, "metadata_", {}) or {}).get("recipe")
    return Recipe.model_validate(raw) if raw else None


def base_training_data(model: Any, workspace: Workspace, settings: Settings | None = None) -> Any:
    """The ``DatasetDict(train, validation)`` the model was trained on.

    The saved dataset named in the model's metadata when it is still there, else rebuilt from
    the recorded recipe (same taxonomy, holdout and split, so the same rows).
    """
    from autocoder.classify import data as D

    meta = getattr(model, "metadata_", {}) or {}
    path = (meta.get("dataset") or {}).get("path")  # relative to the workspace (older: absolute)
    if path and (Path(workspace.root) / path / "dataset_dict.json").exists():
        return D.load_training_data(Path(workspace.root) / path)
    recipe = _recipe_of(model)
    if recipe is None:
        raise ValueError(
            "the model records neither its training data (metadata.dataset.path) nor its "
            "recipe, so it cannot be retrained; train it with `autocoder train`"
        )
    from autocoder.classify.recipe import holdout_set, load_recipe_taxonomy, prepare_training_data
    from autocoder.devsplit import apply_holdout

    taxonomy = load_recipe_taxonomy(recipe, workspace, settings)
    titles, info = holdout_set(recipe, taxonomy)
    if titles:
        apply_holdout(taxonomy, titles)
    splits, _ = prepare_training_data(recipe, taxonomy, workspace, holdout_info=info)
    expected = (meta.get("dataset") or {}).get("train_fingerprint")
    if (meta.get("examples") or {}).get("train_rows"):
        log.info("rebuilt without the stored examples the model trained on (retrain adds them)")
    elif expected and D.fingerprint(splits["train"]) != expected:
        log.warning("rebuilt training data differ from the model's (fingerprint %s)", expected)
    return splits


def _dev_frame(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """``title, description, codes`` from a dev table (``codes`` or ``code`` column)."""
    gold = "codes" if "codes" in df.columns else "code" if "code" in df.columns else None
    if gold is None or "title" not in df.columns:
        raise ValueError(f"dev table {source} needs 'title' and 'codes' (or 'code') columns")
    desc = next((c for c in ("description", "duties") if c in df.columns), None)
    return pd.DataFrame(
        {
            "title": df["title"].map(clean_text),
            "description": df[desc].map(clean_text) if desc else "",
            "codes": df[gold].map(clean_text),
        }
    )


def _read_dev(path: str | Path) -> pd.DataFrame:
    from autocoder.io import read_table

    return _dev_frame(read_table(path, string_columns=("id", "codes", "code")), str(path))


def _imported_holdout(note: str) -> Path | None:
    """The dev table a taxonomy was imported with (``taxonomy import --holdout``), if it exists.

    ``Taxonomy.holdout`` reads "N titles listed in /abs/dev.csv" (or is a bare path)."""
    if not note:
        return None
    path = Path(note.rsplit(" listed in ", 1)[-1].strip()).expanduser()
    return path if path.is_file() else None


def _recipe_dev(
    model: Any, workspace: Workspace, settings: Settings | None
) -> tuple[pd.DataFrame, str] | None:
    """The dev split of the model's recipe (held out of its training), if it can be found."""
    from autocoder.classify.recipe import dev_table, load_recipe_taxonomy
    from autocoder.io import InputError

    recipe = _recipe_of(model)
    if recipe is None or recipe.data.holdout == "none":
        return None
    try:
        taxonomy = load_recipe_taxonomy(recipe, workspace, settings)
        imported = _imported_holdout(taxonomy.holdout)
        if recipe.data.holdout == "onet-dev" and imported is not None:
            return _read_dev(imported), str(imported)
        table = dev_table(recipe, taxonomy)
    except (ValueError, FileNotFoundError, InputError) as exc:
        log.warning("the model's dev split is not available (%s)", exc)
        return None
    if table is None:
        return None
    return _dev_frame(table, recipe.data.holdout), recipe.data.holdout


def dev_split(
    model: Any,
    workspace: Workspace,
    dev: str | Path | None,
    splits: Any,
    settings: Settings | None = None,
) -> tuple[pd.DataFrame, str]:
    """Rows ``title, description, codes`` to measure on, and where they came from: ``dev``,
    else the recipe's holdout, else the validation split of the training data."""
    if dev is not None:
        return _read_dev(dev), str(dev)
    found = _recipe_dev(model, workspace, settings)
    if found is not None:
        return found
    val = splits["validation"]
    frame = pd.DataFrame(
        {
            "title": list(val["title"]),
            "description": list(val["duties"]),
            "codes": list(val["codes"]),
        }
    )
    return frame, "validation split (no dev split found)"


def score_model(model: Any, dev: pd.DataFrame) -> dict[str, float]:
    """Top-1, top-5 and ECE of the top-1 confidence on rows ``title, description, codes``."""
    from autocoder.metrics import expected_calibration_error, top1_correct, top_k_accuracy

    if not len(dev):
        return {"n": 0, "top1": float("nan"), "top5": float("nan"), "ece": float("nan")}
    records = [JobRecord(t, d) for t, d in zip(dev["title"], dev["description"], strict=True)]
    proba = model.predict_proba(records)
    order = np.argsort(-proba, axis=1)[:, :5]
    ranked = np.asarray(model.classes_, dtype=object)[order]
    scores = np.take_along_axis(proba, order, axis=1)
    gold = [tuple(c for c in str(codes).split(";") if c) for codes in dev["codes"]]
    correct = top1_correct(ranked, gold)
    return {
        "n": int(len(dev)),
        "top1": round(top_k_accuracy(ranked, gold, k=1), 4),
        "top5": round(top_k_accuracy(ranked, gold, k=5), 4),
        "ece": round(expected_calibration_error(scores[:, 0], correct), 4),
    }


# --- retraining ---------------------------------------------------------------------------------
def _concat(a: Any, b: Any) -> Any:
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return np.vstack([a, b])
    return [*list(a), *list(b)]


def fit_with_feedback(
    model: Any,
    X_base: Any,
    y_base: Any,
    X_feedback: Any,
    y_feedback: Any,
    *,
    feedback_weight: float = DEFAULT_FEEDBACK_WEIGHT,
    epochs: int = DEFAULT_EPOCHS,
    lr: float | None = None,
    X_val: Any = None,
    y_val: Any = None,
    val_acceptable: Any = None,
    base_weight: Any = None,
) -> Any:
    """Continue training a fitted ``EmbeddingClassifier`` on base rows (weight 1, or
    ``base_weight`` per row) plus feedback rows (weight ``feedback_weight``) from its current
    weights, for ``epochs`` epochs.

    No early stopping: the warm model already scores best on the taxonomy validation split at
    its first epoch, so stopping on it would throw the answers away. The validation rows then
    refit the temperature and the conformal threshold (``model.recalibrate``).
    """
    if feedback_weight <= 0:
        raise ValueError(f"feedback_weight must be > 0, got {feedback_weight}")
    n_base, n_fb = len(y_base), len(y_feedback)
    val_fraction = model.val_fraction
    model.warm_start, model.epochs, model.val_fraction = True, epochs, 0.0
    if lr is not None:
        model.lr = lr
    base = np.ones(n_base) if base_weight is None else np.asarray(base_weight, dtype=np.float64)
    if base.shape != (n_base,):
        raise ValueError(f"base_weight has {base.size} values for {n_base} base rows")
    weights = np.concatenate([base, np.full(n_fb, float(feedback_weight))])
    temperature, threshold = model.temperature_, model.conformal_threshold_
    try:
        model.fit(
            _concat(X_base, X_feedback),
            [*map(str, y_base), *map(str, y_feedback)],
            sample_weight=weights,
        )
    finally:
        model.val_fraction = val_fraction
    if X_val is not None and y_val is not None and len(y_val):
        return model.recalibrate(X_val, y_val, val_acceptable=val_acceptable)
    model.temperature_, model.conformal_threshold_ = temperature, threshold
    return model


@dataclass
class RetrainResult:
    output: Path
    feedback: dict[str, Any]
    feedback_weight: float
    dev_source: str
    dev_excluded: int
    before: dict[str, float]
    after: dict[str, float]
    examples: dict[str, Any] = field(default_factory=dict)
    #: Whether the model retrained from had a calibration sidecar (the new one has none).
    source_calibrated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": str(self.output),
            "feedback": self.feedback,
            "feedback_weight": self.feedback_weight,
            "examples": self.examples,
            "dev": {"source": self.dev_source, "excluded_reviewed_titles": self.dev_excluded},
            "before": self.before,
            "after": self.after,
        }


def refit_dev_rows(
    model: Any, workspace: Workspace, fb: FeedbackRows, settings: Settings | None = None
) -> Any | None:
    """For a model refit on everything (metadata ``refit``, as the packaged one is: its
    recipe's dev titles too), those dev titles as the training dataset the refit built from
    them (``recipe.dev_rows``: titles only, one row per code that is a class), the reviewed ones
    left out: retrained without them it would forget them. None for a model that was not refit
    or whose dev split is not found."""
    from autocoder.classify import data as D
    from autocoder.classify.recipe import dev_rows

    if not (getattr(model, "metadata_", {}) or {}).get("refit"):
        return None
    found = _recipe_dev(model, workspace, settings)
    if found is None:
        log.warning(
            "the model was refit on its dev titles, which are not found: it may forget them"
        )
        return None
    dev, _ = _without_reviewed(found[0], fb)
    return D.build_dataset(dev_rows(dev, [str(c) for c in model.classes_]))


def rows_not_in(rows: Any, base: Any) -> Any:
    """The rows of the dataset ``rows`` whose (text, code) the dataset ``base`` lacks: a dev
    title that is also a training row is one row, as the refit's ``build_dataset`` kept it,
    not two."""
    have = set(zip(base["text"], base["code"], strict=True))
    pairs = zip(rows["text"], rows["code"], strict=True)
    return rows.select([i for i, p in enumerate(pairs) if p not in have])


def _fit_on_splits(
    model: Any,
    splits: Any,
    fb: FeedbackRows,
    examples: ExampleRows | None,
    seen_dev: Any | None = None,
    **options: Any,
) -> Any:
    """``fit_with_feedback`` on the train split (its rows' own weights, as the model was
    trained) plus the ``examples`` rows (their weights) and ``seen_dev`` (``refit_dev_rows``,
    its weights) as base rows and the feedback; the validation split recalibrates."""
    from autocoder.classify import data as D

    train, val = splits["train"], splits["validation"]
    has_val = len(val) > 0
    X_base, y_base = D.dataset_records(train), list(train["code"])
    own = D.row_weights(train)  # the rows' own weights (a source's rows weigh less), as trained
    weights = [np.ones(len(train)) if own is None else own]
    if examples is not None and examples.rows:
        X_base, y_base = X_base + examples.records(), y_base + examples.codes()
        weights.append(examples.weights())
    if seen_dev is not None and len(seen_dev):
        X_base, y_base = X_base + D.dataset_records(seen_dev), y_base + list(seen_dev["code"])
        seen_w = D.row_weights(seen_dev)
        weights.append(np.ones(len(seen_dev)) if seen_w is None else seen_w)
    base_weight = np.concatenate(weights) if len(weights) > 1 or own is not None else None
    return fit_with_feedback(
        model,
        X_base,
        y_base,
        fb.records(),
        list(fb.rows["code"]),
        X_val=D.dataset_records(val) if has_val else None,
        y_val=list(val["code"]) if has_val else None,
        val_acceptable=D.acceptable_codes(val) if has_val else None,
        base_weight=base_weight,
        **options,
    )


# --- the examples store -------------------------------------------------------------------------
def beside_feedback(table: pd.DataFrame, fb: FeedbackRows) -> tuple[pd.DataFrame, int]:
    """The store rows ``fb`` does not already hold, and how many it does: rows of source
    ``review:<project>`` for a project of ``fb`` (``review pull`` made them from its answers)
    and rows with the normalised title and code of a feedback row are left out."""
    from autocoder.examples.store import example_key, review_source

    sources = {review_source(p) for p in fb.projects}
    answered = {(example_key(t), c) for t, c in zip(fb.rows["title"], fb.rows["code"], strict=True)}
    pairs = zip(table["title"].map(example_key), table["code"], strict=True)
    same = np.fromiter((p in answered for p in pairs), dtype=bool, count=len(table))
    left_out = table["source"].isin(sources).to_numpy(dtype=bool) | same
    return table[~left_out].reset_index(drop=True), int(left_out.sum())


def _examples_taxonomy(model: Any, settings: Settings | None) -> str:
    """The taxonomy whose examples store goes with ``model``: the one it records, else its
    recipe's, else the settings' default."""
    recorded = ((getattr(model, "metadata_", {}) or {}).get("taxonomy") or {}).get("name")
    recipe = _recipe_of(model)
    named = recipe.data.taxonomy if recipe is not None else None
    return str(recorded or named or (settings or Settings()).taxonomy.default)


def retrain_examples(
    model: Any,
    workspace: Workspace,
    fb: FeedbackRows,
    dev_rows: pd.DataFrame,
    *,
    use: bool | None = None,
    settings: Settings | None = None,
) -> ExampleRows | None:
    """The stored examples ``retrain`` adds: not those in ``fb`` (``beside_feedback``), nor a
    title of ``dev_rows``; codes that are not classes of ``model`` counted and left out. None
    when off: ``use``, else the model's recipe's ``data.examples`` (on without a recipe)."""
    from autocoder.classify import data as D
    from autocoder.examples.store import ExampleStore

    recipe = _recipe_of(model)
    if not (use if use is not None else recipe is None or recipe.data.examples):
        return None
    store = ExampleStore.of(workspace, _examples_taxonomy(model, settings))
    stored = store.table()
    table, in_feedback = beside_feedback(stored, fb)
    found = D.example_rows(
        table,
        classes=[str(c) for c in model.classes_],
        weight=recipe.data.examples_weight if recipe is not None else 1.0,
        holdout=list(dev_rows["title"]),
    )
    found.stored, found.in_feedback = len(stored), in_feedback
    found.content_hash = store.content_hash()
    for code in found.unknown_codes:
        log.warning("example code %s is not a class of the model; its examples are skipped", code)
    return found


def _with_examples(
    model: Any,
    workspace: Workspace,
    splits: Any,
    fb: FeedbackRows,
    dev_rows: pd.DataFrame,
    *,
    use: bool | None,
    settings: Settings | None,
) -> tuple[Any, ExampleRows | None, dict[str, Any]]:
    """The base splits, the stored examples to add and what the model records of them: with
    examples on, the store's current examples replace those in the model's training set
    (``replaced_rows``: how many of its rows went)."""
    from autocoder.classify import data as D

    examples = retrain_examples(model, workspace, fb, dev_rows, use=use, settings=settings)
    if examples is None:
        return splits, None, {"enabled": False}
    replaced = sum(D.example_counts(splits).values())
    seen = {"enabled": True, **examples.summary(), "replaced_rows": replaced}
    return (D.without_examples(splits) if replaced else splits), examples, seen


def _untrained_after(
    metadata: dict[str, Any], examples: ExampleRows | None, fb: FeedbackRows
) -> dict[str, Any]:
    """The model's ``examples`` record with its untrained example titles (``untrained_keys``)
    less those the retrain trained on (the stored examples and the feedback); {} when the model
    records none."""
    from autocoder.classify import data as D

    record = metadata.get("examples", {})
    if "untrained_keys" not in record:
        return {}
    titles = [*(r["title"] for r in (examples.rows if examples else [])), *fb.rows["title"]]
    return {"examples": {**record, "untrained_keys": D.still_untrained(
        record["untrained_keys"], titles)}}  # fmt: skip


def _without_reviewed(dev_rows: pd.DataFrame, fb: FeedbackRows) -> tuple[pd.DataFrame, int]:
    """Dev rows whose title was not reviewed (a reviewed title would flatter the after figure)."""
    reviewed = {normalize_text(t) for t in fb.rows["title"]}
    keep = ~dev_rows["title"].map(normalize_text).isin(reviewed)
    return dev_rows[keep].reset_index(drop=True), int((~keep).sum())


def _check_options(model_dir: Path, output_dir: Path, epochs: int, lr: float | None) -> None:
    if epochs < 1 or (lr is not None and lr <= 0):
        raise ValueError(f"epochs must be >= 1 and lr > 0, got epochs={epochs}, lr={lr}")
    if output_dir.resolve() == model_dir.resolve():
        raise ValueError(f"--output {output_dir} must differ from --model {model_dir}")


def retrain(
    model_dir: str | Path,
    output_dir: str | Path,
    feedback: pd.DataFrame,
    *,
    workspace: Workspace,
    feedback_weight: float = DEFAULT_FEEDBACK_WEIGHT,
    epochs: int = DEFAULT_EPOCHS,
    lr: float | None = None,
    dev: str | Path | None = None,
    settings: Settings | None = None,
    embedder: Any = None,
    cache_dir: str | Path | None = None,
    use_examples: bool | None = None,
) -> RetrainResult:
    """Warm-start DIR (``pretrained``: the packaged model) on its training data, the stored
    examples (``retrain_examples``; ``use_examples``) and ``feedback``; save to ``output_dir``.

    ``lr`` defaults to ``DEFAULT_LR_SCALE`` times the model's own learning rate."""
    from autocoder.classify.model import load_model
    from autocoder.coding.loaded import PRETRAINED, SIDECAR, resolve_model_dir

    packaged = str(model_dir) == PRETRAINED
    model_dir, output_dir = Path(resolve_model_dir(model_dir) or model_dir), Path(output_dir)
    _check_options(model_dir, output_dir, epochs, lr)
    model = load_model(model_dir, cache_dir=cache_dir, embedder=embedder)
    fb = feedback_rows(feedback, model.classes_)
    if not len(fb.rows):
        raise ValueError(f"no usable feedback to retrain on: {fb.counts}")
    for code in fb.unknown_codes:
        log.warning("feedback code %s is not a class of the model; its rows are skipped", code)
    splits = base_training_data(model, workspace, settings)
    dev_rows, dev_source = dev_split(model, workspace, dev, splits, settings)
    dev_rows, excluded = _without_reviewed(dev_rows, fb)
    splits, examples, examples_seen = _with_examples(
        model, workspace, splits, fb, dev_rows, use=use_examples, settings=settings
    )
    seen_dev = refit_dev_rows(model, workspace, fb, settings)
    if seen_dev is not None:
        seen_dev = rows_not_in(seen_dev, splits["train"])
    if seen_dev is not None and dev is None:
        dev_source += " (the model was refit on it and is retrained on it: seen titles)"
    before = score_model(model, dev_rows)
    lr = lr if lr is not None else model.lr * DEFAULT_LR_SCALE
    options = {"feedback_weight": feedback_weight, "epochs": epochs, "lr": lr}
    _fit_on_splits(model, splits, fb, examples, seen_dev, **options)
    after = score_model(model, dev_rows)
    seen = {**fb.summary(), "weight": float(feedback_weight), "epochs": epochs, "lr": lr,
            "refit_dev_rows": 0 if seen_dev is None else len(seen_dev)}  # fmt: skip
    model.metadata_ = {
        **model.metadata_,
        **_untrained_after(model.metadata_, examples, fb),
        # no machine path in a saved model
        "retrained_from": PRETRAINED if packaged else model_dir.resolve().name,
        "feedback": seen,
        "retrain_examples": examples_seen,
    }
    (output_dir / SIDECAR).unlink(missing_ok=True)  # a calibration of what was there before
    model.save(output_dir)
    if (model_dir / "recipe.toml").exists():
        shutil.copyfile(model_dir / "recipe.toml", output_dir / "recipe.toml")
    result = RetrainResult(
        output_dir, fb.summary(), float(feedback_weight), dev_source, excluded, before, after,
        examples_seen, (model_dir / SIDECAR).is_file(),
    )  # fmt: skip
    (output_dir / "retrain.json").write_text(json.dumps(result.to_dict(), indent=2, default=str))
    return result
