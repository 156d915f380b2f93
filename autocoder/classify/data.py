"""Training data for the classifier: rows with provenance, a stratified split, resampling.

Each row is one job record with its code: ``text`` (the MOM rendering ``job_title=…
job_duties=…`` / ``job_title=…`` / ``job_duties=…``), ``title``, ``duties``, ``input_format``
(``title_duties`` | ``title`` | ``duties``), ``code`` and ``provenance`` (where it came from:
``taxonomy:alt_title``, ``labeled:<name>``, ``synthetic:<model>:<prompt_version>``,
``feedback:<name>``, ``examples:<source>``…) and ``weight`` (its sample weight). Sources:

* the taxonomy (apply the dev holdout first!): titles, alternate and reported titles, tasks,
  descriptions, and a few title + duties combinations per code;
* labeled records (``code, title, duties``), synthetic / paraphrased records from the LLM
  (``code, title, duties, source, prompt_version, model``) and human feedback;
* the taxonomy's coded-examples store (``autocoder.examples``), one row per stored example
  weighing its stored weight (``example_rows``).

Training sets are Hugging Face ``datasets`` saved to disk, so a run can be reproduced from
exactly what it trained on.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from autocoder.examples.store import example_key, key_digest
from autocoder.records import InputFormat, JobRecord, clean_text
from autocoder.taxonomy.model import Taxonomy

COLUMNS = ["text", "title", "duties", "input_format", "code", "codes", "provenance", "weight"]
TAXONOMY_KINDS = ("title", "alt_title", "reported_title", "task", "description")
_MOM_RE = re.compile(r"^\s*(?:job_title=(?P<title>.*?))?\s*(?:job_duties=(?P<duties>.*))?$", re.S)


def record_format(record: JobRecord) -> InputFormat:
    """The MOM format a record renders in: both fields, title only, or duties only."""
    if record.title and record.duties:
        return "title_duties"
    return "title" if record.title else "duties"


def parse_mom(text: str) -> JobRecord | None:
    """Read ``job_title=… job_duties=…`` back into a record; None if ``text`` is not MOM."""
    if not text.lstrip().startswith(("job_title=", "job_duties=")):
        return None
    match = _MOM_RE.match(text)
    if match is None:  # pragma: no cover - the pattern matches any MOM prefix
        return None
    return JobRecord(clean_text(match.group("title")), clean_text(match.group("duties")))


def _row(record: JobRecord, code: str, provenance: str, weight: float = 1.0) -> dict[str, Any]:
    fmt = record_format(record)
    return {
        "text": record.text(fmt),
        "title": record.title,
        "duties": record.duties,
        "input_format": fmt,
        "code": code,
        "provenance": provenance,
        "weight": float(weight),
    }


def taxonomy_rows(
    taxonomy: Taxonomy,
    *,
    kinds: Sequence[str] = TAXONOMY_KINDS,
    title_duties_pairs: int = 2,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Rows from every leaf code's texts; titles render as ``title``, tasks and descriptions
    as ``duties``; ``title_duties_pairs`` random (title, task) rows per code add the full
    ``title_duties`` format (the first pairs the official title with the description)."""
    unknown = set(kinds) - set(TAXONOMY_KINDS)
    if unknown:
        raise ValueError(f"unknown taxonomy text kinds {sorted(unknown)}; use {TAXONOMY_KINDS}")
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for code in taxonomy.leaves():
        titles = [code.title, *code.alt_titles, *code.reported_titles]
        titles = [t for t in titles if t]
        duties = [t for t in (*code.tasks, code.description) if t]
        texts: list[tuple[str, JobRecord]] = []
        for kind, text in taxonomy.texts(code.code, tuple(k for k in kinds)):
            if kind in ("task", "description"):
                texts.append((kind, JobRecord("", clean_text(text))))
            else:
                texts.append((kind, JobRecord(clean_text(text))))
        for i in range(title_duties_pairs if titles and duties else 0):
            if i == 0 and code.description:
                pair = JobRecord(clean_text(code.title), clean_text(code.description))
            else:
                pair = JobRecord(clean_text(rng.choice(titles)), clean_text(rng.choice(duties)))
            texts.append(("title+duties", pair))
        seen: set[str] = set()
        for kind, record in texts:
            row = _row(record, code.code, f"taxonomy:{kind}")
            key = row["text"].lower()
            if key in seen:
                continue
            seen.add(key)
            rows.append(row)
    return rows


def table_rows(
    df: pd.DataFrame,
    *,
    provenance: str,
    classes: Iterable[str] | None = None,
    source_name: str = "table",
) -> list[dict[str, Any]]:
    """Rows from a table with ``code`` and ``title`` and/or ``duties``/``description``.

    Synthetic rows (``source == "synthetic"``) get ``synthetic:<model>:<prompt_version>``
    provenance. Codes outside ``classes`` and empty records raise ``ValueError`` naming the row.
    """
    if "code" not in df.columns:
        raise ValueError(f"{source_name}: needs a 'code' column; columns are {list(df.columns)}")
    duties_col = next((c for c in ("duties", "description") if c in df.columns), None)
    if "title" not in df.columns and duties_col is None:
        raise ValueError(
            f"{source_name}: needs a 'title' and/or 'duties' column; columns are {list(df.columns)}"
        )
    known = set(classes) if classes is not None else None
    rows: list[dict[str, Any]] = []
    for i, item in enumerate(df.to_dict("records")):
        code = clean_text(item.get("code"))
        record = JobRecord(clean_text(item.get("title")), clean_text(item.get(duties_col or "")))
        if not record.title and not record.duties:
            raise ValueError(f"{source_name}: row {i + 1} (code {code!r}) has no title or duties")
        if known is not None and code not in known:
            raise ValueError(
                f"{source_name}: row {i + 1} ({record.title or record.duties[:40]!r}) has code "
                f"{code!r}, which is not a leaf code of the taxonomy"
            )
        prov = provenance
        if clean_text(item.get("source")) == "synthetic":
            prov = f"synthetic:{clean_text(item.get('model')) or '?'}:{clean_text(item.get('prompt_version')) or '?'}"
        rows.append(_row(record, code, prov))
    return rows


def build_dataset(rows: Iterable[dict[str, Any]]) -> Any:
    """A ``datasets.Dataset`` with the standard columns, duplicates (text, code) removed.

    ``codes`` lists (``;``-separated) every code that has the same text (case-insensitive): a
    title listed under several occupations is right for each of them, which is how the dev
    split is scored too; validation uses it for accuracy, calibration and conformal sets.
    """
    from datasets import Dataset

    df = pd.DataFrame(list(rows), columns=[c for c in COLUMNS if c != "codes"])
    df["weight"] = df["weight"].fillna(1.0).astype("float64")
    df = df[df["text"].str.len() > 0].drop_duplicates(["text", "code"]).reset_index(drop=True)
    key = df["text"].str.lower().str.split().str.join(" ")
    acceptable = df.groupby(key)["code"].agg(lambda c: ";".join(sorted(set(c))))
    df["codes"] = key.map(acceptable)
    return Dataset.from_pandas(df[COLUMNS], preserve_index=False)


def stratified_indices(
    labels: Sequence[Any],
    *,
    val_fraction: float,
    seed: int = 0,
    eligible: Sequence[bool] | None = None,
) -> tuple[list[int], list[int]]:
    """Stratified ``(train, validation)`` row indices, both ascending.

    Per label (in sorted order), ``val_fraction`` of its eligible rows (all rows when
    ``eligible`` is None), stochastically rounded, go to validation; a label always keeps at
    least one row in train, so a label with a single example is never lost to validation.
    """
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if eligible is not None and len(eligible) != len(labels):
        raise ValueError(f"eligible has {len(eligible)} rows, labels {len(labels)}")
    rng = np.random.default_rng(seed)
    by_label: dict[Any, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_label[label].append(i)
    val: set[int] = set()
    for label in sorted(by_label):
        idx = by_label[label]
        candidates = [i for i in idx if eligible is None or eligible[i]]
        n_val = int(np.floor(len(candidates) * val_fraction + rng.random()))
        n_val = min(n_val, len(candidates), len(idx) - 1)
        if n_val > 0:
            val.update(rng.choice(candidates, size=n_val, replace=False).tolist())
    return [i for i in range(len(labels)) if i not in val], sorted(val)


def stratified_split(
    dataset: Any,
    *,
    val_fraction: float = 0.1,
    seed: int = 0,
    val_formats: Sequence[str] | None = None,
) -> Any:
    """``DatasetDict(train, validation)``, stratified by code (see ``stratified_indices``).

    Only rows whose ``input_format`` is in ``val_formats`` (all when None) can go to validation.
    """
    from datasets import DatasetDict

    eligible = None
    if val_formats is not None:
        allowed = set(val_formats)
        eligible = [f in allowed for f in dataset["input_format"]]
    train, val = stratified_indices(
        list(dataset["code"]), val_fraction=val_fraction, seed=seed, eligible=eligible
    )
    return DatasetDict(train=dataset.select(train), validation=dataset.select(val))


def resample(
    dataset: Any,
    *,
    min_per_class: int = 0,
    max_per_class: int | None = None,
    seed: int = 0,
) -> Any:
    """Oversample codes below ``min_per_class`` (repeat rows), undersample above ``max``."""
    if max_per_class is not None and max_per_class < max(1, min_per_class):
        raise ValueError("max_per_class must be >= min_per_class and >= 1")
    rng = np.random.default_rng(seed)
    by_code: dict[str, list[int]] = defaultdict(list)
    for i, code in enumerate(dataset["code"]):
        by_code[code].append(i)
    keep: list[int] = []
    for code in sorted(by_code):
        idx = by_code[code]
        if max_per_class is not None and len(idx) > max_per_class:
            idx = sorted(rng.choice(idx, size=max_per_class, replace=False).tolist())
        if len(idx) < min_per_class:
            idx = idx + rng.choice(idx, size=min_per_class - len(idx), replace=True).tolist()
        keep.extend(idx)
    return dataset.select(keep)


def fingerprint(dataset: Any) -> str:
    """A content hash of the rows (text, code, provenance, and the weight when not 1),
    order-sensitive."""
    h = hashlib.sha1()
    names = dataset.column_names if hasattr(dataset, "column_names") else list(dataset)
    weights = dataset["weight"] if "weight" in names else [1.0] * len(dataset["text"])
    for text, code, prov, w in zip(
        dataset["text"], dataset["code"], dataset["provenance"], weights, strict=True
    ):
        extra = "" if w == 1.0 else f"\x00{w:g}"
        h.update(f"{text}\x00{code}\x00{prov}{extra}\n".encode())
    return h.hexdigest()[:16]


def save_training_data(splits: Any, directory: str | Path, *, meta: dict | None = None) -> Path:
    """Save a ``DatasetDict`` (Arrow) plus ``manifest.json`` (counts, provenance, fingerprints)."""
    directory = Path(directory)
    splits.save_to_disk(str(directory))
    manifest: dict[str, Any] = {"splits": {}, **(meta or {})}
    for name, ds in splits.items():
        manifest["splits"][name] = {
            "rows": len(ds),
            "codes": len(set(ds["code"])),
            "fingerprint": fingerprint(ds),
            "provenance": dict(pd.Series(ds["provenance"]).value_counts().sort_index()),
        }
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2, default=int))
    return directory


def load_training_data(directory: str | Path) -> Any:
    from datasets import load_from_disk

    directory = Path(directory)
    if not (directory / "dataset_dict.json").exists():
        raise FileNotFoundError(
            f"no saved training data at {directory} (missing dataset_dict.json)"
        )
    return load_from_disk(str(directory))


def acceptable_codes(dataset: Any) -> list[list[str]]:
    """Per row, every code the row's text is listed under (see ``build_dataset``)."""
    return [c.split(";") for c in dataset["codes"]]


def row_weights(dataset: Any) -> np.ndarray | None:
    """The rows' sample weights; None when every row weighs 1 (or the set has no weights)."""
    if "weight" not in dataset.column_names:
        return None
    w = np.asarray(dataset["weight"], dtype=np.float64)
    return None if np.all(w == 1.0) else w


def source_rows(table: pd.DataFrame, *, classes: Iterable[str]) -> list[dict[str, Any]]:
    """Title rows from a ``text, code, source, weight`` table (``classify.sources``); the
    provenance is ``source:<source>``."""
    known = set(classes)
    rows = []
    for text, code, source, weight in zip(
        table["text"], table["code"], table["source"], table["weight"], strict=True
    ):
        if code in known and clean_text(text):
            rows.append(_row(JobRecord(clean_text(text)), code, f"source:{source}", weight))
    return rows


def dataset_records(dataset: Any) -> list[JobRecord]:
    return [JobRecord(t, d) for t, d in zip(dataset["title"], dataset["duties"], strict=True)]


def paraphrase_rows(
    df: pd.DataFrame,
    counts: Counter[str],
    *,
    min_per_code: int,
    classes: Iterable[str],
    provenance: str,
    source_name: str = "paraphrases",
) -> list[dict[str, Any]]:
    """Training rows from a paraphrase table for codes with fewer than ``min_per_code`` rows
    in ``counts``, each topped up to at most ``min_per_code`` (0 = every paraphrase)."""
    missing = {"code", "paraphrase", "kind"} - set(df.columns)
    if missing:
        raise ValueError(f"{source_name}: not a paraphrase table, missing {sorted(missing)}")
    budget = Counter({c: max(0, min_per_code - counts.get(c, 0)) for c in set(df["code"])})
    picked = []
    for item in df.to_dict("records"):
        code = clean_text(item["code"])
        if min_per_code and budget[code] <= 0:
            continue
        budget[code] -= 1
        text = clean_text(item["paraphrase"])
        title, duties = (text, "") if item["kind"] == "title" else ("", text)
        picked.append({"code": code, "title": title, "duties": duties})
    table = pd.DataFrame(picked, columns=["code", "title", "duties"])
    return table_rows(table, provenance=provenance, classes=classes, source_name=source_name)


#: The provenance prefix of rows from the coded-examples store.
EXAMPLES_PREFIX = "examples:"


@dataclass
class ExampleRows:
    """Stored coded examples as training rows (``example_rows``), and what was left out.

    ``held_out``: examples whose title is a dev title; ``unknown_code``: examples whose code is
    not a class (``unknown_codes`` lists those codes); ``merged``: examples with the same text
    and code as an earlier one, folded into its row (their weights add, as their votes do);
    ``in_feedback``: examples the caller left out as already in the feedback (``retrain``).
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    stored: int = 0
    held_out: int = 0
    unknown_code: int = 0
    unknown_codes: list[str] = field(default_factory=list)
    merged: int = 0
    empty: int = 0
    in_feedback: int = 0
    weight: float = 1.0  # the multiplier of the stored weights
    content_hash: str = ""

    def records(self) -> list[JobRecord]:
        return [JobRecord(r["title"], r["duties"]) for r in self.rows]

    def codes(self) -> list[str]:
        return [r["code"] for r in self.rows]

    def weights(self) -> np.ndarray:
        return np.asarray([r["weight"] for r in self.rows], dtype=np.float64)

    def summary(self) -> dict[str, Any]:
        """Counts for a model's metadata (no paths): stored, rows made, each reason left out,
        rows per provenance and the store's content hash."""
        return {
            "content_hash": self.content_hash,
            "weight": self.weight,
            "stored": self.stored,
            "rows": len(self.rows),
            "held_out": self.held_out,
            "unknown_code": self.unknown_code,
            "unknown_codes": list(self.unknown_codes),
            "merged": self.merged,
            "empty": self.empty,
            "in_feedback": self.in_feedback,
            "provenance": dict(sorted(Counter(r["provenance"] for r in self.rows).items())),
        }


def _stored_weight(value: Any) -> float:
    try:
        weight = float(value)
    except (TypeError, ValueError):
        return 1.0
    return weight if weight == weight else 1.0  # NaN: the default weight


def example_rows(
    table: pd.DataFrame,
    *,
    classes: Iterable[str],
    weight: float = 1.0,
    holdout: Iterable[str] = (),
) -> ExampleRows:
    """Training rows from a coded-examples store table (``title, description, code, source,
    weight``): provenance ``examples:<source>``, weight the stored weight times ``weight``.

    An example whose normalised title (``example_key``, the key exact matches use) is in
    ``holdout`` (dev titles) or whose code is not in ``classes`` is counted, not made a row.
    """
    known = set(classes)
    held = {example_key(t) for t in holdout}
    out = ExampleRows(stored=len(table), weight=float(weight))
    unknown: Counter[str] = Counter()
    made: dict[tuple[str, str], dict[str, Any]] = {}
    for item in table.to_dict("records"):
        record = JobRecord(clean_text(item.get("title")), clean_text(item.get("description")))
        code = clean_text(item.get("code"))
        if not record.title and not record.duties:
            out.empty += 1
        elif record.title and example_key(record.title) in held:
            out.held_out += 1
        elif code not in known:
            unknown[code] += 1
        else:
            source = clean_text(item.get("source")) or "?"
            w = _stored_weight(item.get("weight")) * float(weight)
            row = _row(record, code, f"{EXAMPLES_PREFIX}{source}", w)
            key = (row["text"], code)
            if key in made:
                made[key]["weight"] += row["weight"]
                out.merged += 1
            else:
                made[key] = row
    out.rows = list(made.values())
    out.unknown_code, out.unknown_codes = sum(unknown.values()), sorted(unknown)
    return out


def untrained_example_keys(splits: Any, *, also_trained: Iterable[str] = ()) -> list[str]:
    """Digests (``key_digest``) of the normalised titles of the validation split's example rows
    that no train row shares, nor any of ``also_trained`` (titles trained on elsewhere, e.g.
    the labels a codes-objective embedder was fine-tuned on): stored examples neither the model
    nor its embedder saw, so ``examples fit`` can hold them out for a model trained on the
    store."""
    held = {
        example_key(t)
        for t, p in zip(splits["validation"]["title"], splits["validation"]["provenance"],
                        strict=True)
        if str(p).startswith(EXAMPLES_PREFIX)
    }  # fmt: skip
    return still_untrained(
        (key_digest(k) for k in held if k), [*splits["train"]["title"], *also_trained]
    )


def still_untrained(untrained: Iterable[str], trained_titles: Iterable[str]) -> list[str]:
    """The digests in ``untrained`` whose title is none of ``trained_titles`` (a model trained
    further: its untrained example titles less those it has now trained on), sorted."""
    trained = {key_digest(example_key(t)) for t in trained_titles}
    return sorted(set(untrained) - trained)


def example_counts(splits: Any) -> dict[str, int]:
    """Rows from the examples store in each split (``examples:`` provenance)."""
    return {
        name: sum(str(p).startswith(EXAMPLES_PREFIX) for p in ds["provenance"])
        for name, ds in splits.items()
    }


def without_examples(splits: Any) -> Any:
    """``splits`` without the rows from the examples store (each split filtered)."""
    from datasets import DatasetDict

    return DatasetDict(
        {
            name: ds.select(
                [
                    i
                    for i, p in enumerate(ds["provenance"])
                    if not str(p).startswith(EXAMPLES_PREFIX)
                ]
            )
            for name, ds in splits.items()
        }
    )
