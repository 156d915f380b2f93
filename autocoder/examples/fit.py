"""Vote settings and blend temperature fitted on the store itself (``autocoder examples fit``).

The defaults of ``[examples]`` suit a few hundred review answers (only near-copies vote); an
office's coded history of thousands of titles wants other settings, and a blend of two
calibrated distributions is not calibrated itself. ``fit_examples`` holds a seeded share of the
stored titles out (every row of a held-out normalised title; ``rows`` rows at most); the other
examples vote for each held-out one as they would for a new title (its nearest examples), and
the coder's own predictor without examples (retrieval, or a model mixed with retrieval) scores
it. Over :data:`VOTE_GRID` the neighbour settings with the best top-1 + top-5 (the sum of the
two hit rates; ties: the better top-1) are chosen, then the blend temperature whose top-1
confidence has the lowest ECE. Top-1 alone ranks the grid mostly by chance on a few hundred
held-out titles and prefers few neighbours: on 980 held-out JobBERT history titles it chose 10
neighbours, and the model coded dev 0.453 / 0.715; the sum chose 40, 0.456 / 0.727, the best
setting of the grid on dev itself, and for retrieval it chose what dev itself would have
(benchmarks/RESULTS.md, "choosing the vote settings by top-1 + top-5"). Log loss was tried
too: it trusted the examples less for the model (0.446 / 0.720) and, given a product of experts
to choose from, trusted them more for retrieval (0.389 against 0.429 top-1).

A model trained on the store (``data.examples``) has seen most stored titles, and a blend
fitted on them trusts it more than it deserves on new titles. Such a model records the digests
of the example titles it never trained on (its validation split, ``examples.untrained_keys`` in
its metadata); only those are held out for it.

Exact-title matches are not fitted: the store keeps one row per (title, code, source,
annotator), so a held-out row's exact matches would be only the titles coded otherwise, a
biased sample of how often a recurring title keeps its code. Their settings (``exact_weight``,
``exact_trust``) stay as configured, the rule the office sets for its own coding, and the
temperature is applied only where neighbours vote without an exact match.

The figures are cross-fitted: the held-out titles are split into two halves, each half scored
with the settings and temperature chosen on the other, so they are held-out figures. The
settings stored are those chosen on every held-out row, in one file per coder beside the store
(``fits/<digest of the coder's id>.json``, with the store content it was made on); coding uses
the fit of its own coder (``examples.use_fit``). A store that has changed since keeps its fit
(the settings still suit the store's kind of content; ``examples fit`` again refreshes it); a
retrained model is another coder and needs its own.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from autocoder.embed import Embedder
from autocoder.examples.index import MemoryExampleIndex, Neighbours
from autocoder.examples.store import ExampleStore, key_digest
from autocoder.examples.vote import ExampleVoter, blend, example_distribution, knn_votes
from autocoder.metrics import expected_calibration_error
from autocoder.records import JobRecord

#: The folder beside the store with one fit per coder.
FITS_DIR = "fits"
FIT_FORMAT = 1

#: The vote settings ``fit_examples`` tries (``[examples]`` keys).
VOTE_GRID: dict[str, tuple[float, ...]] = {
    "neighbours": (5, 10, 20, 40),
    "temperature": (0.02, 0.05, 0.1),
    "min_similarity": (0.0, 0.5, 0.7, 0.8, 0.9),
    "weight": (0.3, 0.5, 0.7, 0.85),
}
#: Blend temperatures tried (a log grid around 1).
BLEND_TEMPERATURES = tuple(float(t) for t in np.geomspace(0.25, 4.0, 33))
#: Every setting a fit stores (the grid's and the blend temperature).
FIT_KEYS = (*VOTE_GRID, "blend_temperature")
#: Log loss of a gold code given (almost) no probability.
MIN_GOLD_P = 1e-6
#: Held-out rows below which no fit is made (too few to choose among the grid).
MIN_HELD_OUT = 50


def coder_digest(predictor_id: str) -> str:
    """What a fit records of the coder it was made for (a digest of its id)."""
    return hashlib.sha256(predictor_id.encode()).hexdigest()[:16]


def log_loss(p: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """Per row ``-log p[gold]`` (the gold's probability floored at ``MIN_GOLD_P``)."""
    p = np.asarray(p, np.float64)
    return -np.log(np.clip(p[np.arange(len(p)), np.asarray(gold)], MIN_GOLD_P, None))


def ranks(p: np.ndarray, gold: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row whether the gold column is the top one and whether it is among the top five."""
    p = np.asarray(p, np.float64)
    k = min(5, p.shape[1])
    top = np.argpartition(-p, k - 1, axis=1)[:, :k]
    best = top[np.arange(len(p)), np.take_along_axis(p, top, 1).argmax(axis=1)]
    return best == gold, (top == np.asarray(gold)[:, None]).any(axis=1)


def confidence(p: np.ndarray, floor_code: np.ndarray, floor: np.ndarray) -> np.ndarray:
    """The confidence coding reports: the top probability, raised to ``floor`` where the top
    column is ``floor_code`` (the code agreeing exact-title examples give; -1 = none)."""
    top = np.asarray(p).argmax(axis=1)
    return np.where(top == floor_code, np.maximum(p.max(axis=1), floor), p.max(axis=1))


def fit_blend_temperature(
    gold: np.ndarray,
    *,
    floor_code: np.ndarray,
    floor: np.ndarray,
    temperatures: Sequence[float] = BLEND_TEMPERATURES,
    tempered: Callable[[float], np.ndarray],
) -> float:
    """The temperature whose coding confidence has the lowest ECE (ties: the one closest to
    1). ``tempered(T)``: the blend of the rows of ``gold`` at temperature ``T``."""

    def ece(t: float) -> float:
        q = tempered(t)
        hit = q.argmax(axis=1) == gold
        return expected_calibration_error(confidence(q, floor_code, floor), hit)

    return min(temperatures, key=lambda t: (round(ece(t), 6), abs(np.log(t))))


class HeldOut:
    """The held-out examples as the grid needs them: the base's probabilities, the nearest
    other examples, the exact-title votes of the others and each row's gold column."""

    def __init__(
        self,
        p_base: np.ndarray,
        found: Neighbours,
        exact: list[dict[str, float] | None],
        gold: np.ndarray,
        voter: ExampleVoter,
    ) -> None:
        self.p_base = p_base
        self.found = found
        self.exact = exact
        self.has_exact = np.asarray([bool(e) for e in exact], dtype=bool)
        self.gold = gold
        self.voter = voter
        pos = {str(c): i for i, c in enumerate(voter.classes_)}
        self.floor_code = np.full(len(gold), -1)
        self.floor_share = np.zeros(len(gold))
        for i, votes in enumerate(exact):
            total = sum((votes or {}).values())
            if votes and total > 0:
                code = max(sorted(votes), key=lambda c: votes[c])
                self.floor_code[i], self.floor_share[i] = pos[code], votes[code] / total

    def p_examples(self, s: Mapping[str, float]) -> np.ndarray:
        knn = [
            knn_votes(c, sim, w, k=int(s["neighbours"]), temperature=s["temperature"],
                      min_similarity=s["min_similarity"])
            for c, sim, w in zip(self.found.codes, self.found.sims, self.found.weights,
                                 strict=True)
        ]  # fmt: skip
        return self.voter.dense(
            [example_distribution(a, e, s["exact_weight"]) for a, e in zip(knn, self.exact,
                                                                           strict=True)]
        )  # fmt: skip

    def proba(self, s: Mapping[str, float], rows: np.ndarray | None = None) -> np.ndarray:
        """The blend at settings ``s`` (``blend_temperature`` 1 when ``s`` has none)."""
        rows = np.arange(len(self.gold)) if rows is None else rows
        return blend(self.p_base[rows], self.p_examples(s)[rows], self.has_exact[rows],
                     weight=s["weight"], exact_trust=s["exact_trust"],
                     temperature=s.get("blend_temperature", 1.0))  # fmt: skip

    def figures(self, p: np.ndarray, rows: np.ndarray, exact_trust: float) -> dict[str, float]:
        """Top-1, top-5 and the ECE of the coding confidence of the ``rows`` scored ``p``."""
        hit1, hit5 = ranks(p, self.gold[rows])
        conf = confidence(p, self.floor_code[rows], exact_trust * self.floor_share[rows])
        return {
            "top1": round(float(hit1.mean()), 4),
            "top5": round(float(hit5.mean()), 4),
            "log_loss": round(float(log_loss(p, self.gold[rows]).mean()), 4),
            "ece": round(expected_calibration_error(conf, hit1), 4),
            "n": int(len(rows)),
        }

    def temperature_for(self, s: Mapping[str, float], rows: np.ndarray) -> float:
        """The blend temperature fitted on ``rows`` at settings ``s``."""
        base = {**s, "blend_temperature": 1.0}
        floor = s["exact_trust"] * self.floor_share[rows]
        p_ex = self.p_examples(base)[rows]

        def tempered(t: float) -> np.ndarray:
            return blend(self.p_base[rows], p_ex, self.has_exact[rows], weight=s["weight"],
                         exact_trust=s["exact_trust"], temperature=t)  # fmt: skip

        return fit_blend_temperature(
            self.gold[rows], floor_code=self.floor_code[rows], floor=floor,
            tempered=tempered,
        )  # fmt: skip


def grid_search(
    held: HeldOut,
    parts: Sequence[np.ndarray],
    *,
    fixed: Mapping[str, float],
    grid: Mapping[str, Sequence[float]] = VOTE_GRID,
) -> list[dict[str, float]]:
    """Per row set of ``parts``, the grid settings with the best top-1 + top-5 there (ties:
    the better top-1, then the first in grid order); ``fixed``: the exact-title settings, not
    searched."""
    best: list[tuple[tuple[float, float], dict[str, float]] | None] = [None] * len(parts)
    vote_keys = [k for k in grid if k != "weight"]
    combos = list(itertools.product(*(grid[k] for k in vote_keys)))
    for combo in tqdm(combos, desc="examples fit", unit="setting", leave=False):
        s = {**fixed, **dict(zip(vote_keys, combo, strict=True))}
        p_ex = held.p_examples(s)
        for weight in grid["weight"]:
            p = blend(held.p_base, p_ex, held.has_exact, weight=weight,
                      exact_trust=s["exact_trust"])  # fmt: skip
            hit1, hit5 = ranks(p, held.gold)
            for j, rows in enumerate(parts):
                top1, top5 = float(hit1[rows].mean()), float(hit5[rows].mean())
                score = (round(top1 + top5, 6), round(top1, 6))
                if best[j] is None or score > best[j][0]:  # type: ignore[index]
                    best[j] = (score, {**s, "weight": weight})
    return [b[1] for b in best if b is not None]


def held_out_rows(table: pd.DataFrame, *, rows: int, share: float, seed: int) -> np.ndarray:
    """The seeded positions of the held-out examples: every row of a seeded order of the
    normalised titles until ``share`` of the table (``rows`` at most) is reached."""
    n = min(int(rows), int(round(share * len(table))))
    if n < MIN_HELD_OUT:
        raise ValueError(
            f"too few examples to fit the vote settings: {len(table)} stored, {n} would be held "
            f"out, at least {MIN_HELD_OUT} are needed (add more examples or raise --share)"
        )
    keys = table["key"].astype(str).to_numpy()
    unique = np.unique(keys)
    taken: list[np.ndarray] = []
    count = 0
    by_key = pd.Series(np.arange(len(keys))).groupby(keys).apply(np.asarray)
    for key in unique[np.random.default_rng(seed).permutation(len(unique))]:
        if count >= n:
            break
        positions = by_key[key]
        taken.append(positions)
        count += len(positions)
    return np.sort(np.concatenate(taken))


def untrained_rows(
    table: pd.DataFrame, untrained: Collection[str], *, rows: int, seed: int
) -> np.ndarray:
    """The seeded positions of the held-out examples for a coder trained on the store: every
    row of the titles whose digest (``key_digest``) is in ``untrained`` (titles the model and its
    embedder never trained on), in a seeded order of those titles, ``rows`` rows at most."""
    wanted = set(untrained)
    inside = np.asarray([key_digest(str(k)) in wanted for k in table["key"]], dtype=bool)
    if int(inside.sum()) < MIN_HELD_OUT:
        raise ValueError(
            f"the model trained on the examples store: only {int(inside.sum())} stored examples "
            f"have titles it never trained on (its validation split), at least {MIN_HELD_OUT} "
            "are needed to fit the vote settings on them; add examples and retrain with a "
            "larger data.val_fraction (only title-only examples can be validation rows with "
            "the default data.val_formats = ['title'])"
        )
    picked = held_out_rows(table[inside], rows=rows, share=1.0, seed=seed)
    return np.sort(np.flatnonzero(inside)[picked])


def fit_examples(
    table: pd.DataFrame,
    base: Any,
    embedder: Embedder,
    *,
    configured: Mapping[str, float],
    rows: int = 2000,
    share: float = 0.2,
    seed: int = 0,
    untrained: Collection[str] | None = None,
    grid: Mapping[str, Sequence[float]] = VOTE_GRID,
) -> dict[str, Any]:
    """Neighbour settings and blend temperature for ``base`` (a fitted predictor without
    examples) and the stored ``table``, with cross-fitted figures of the base alone, the
    ``configured`` settings and the fitted ones (module docstring); the exact-title settings
    are ``configured``'s. The result is the fit file's content less what names the coder and
    the store (``save_fit`` adds them).

    ``untrained`` (a model trained on the store: the digests of the example titles it never
    trained on, its metadata's ``examples.untrained_keys``) holds out only those titles
    (``untrained_rows``, ``share`` unused): a title the model trained on would make the blend
    trust the model more than it deserves on new titles."""
    classes = [str(c) for c in base.classes_]
    known = table[table["code"].astype(str).isin(set(classes))].reset_index(drop=True)
    if untrained is None:
        held_pos = held_out_rows(known, rows=rows, share=share, seed=seed)
    else:
        held_pos = untrained_rows(known, untrained, rows=rows, seed=seed)
    held_df = known.iloc[held_pos]
    rest = known.drop(index=known.index[held_pos])
    voter = ExampleVoter(
        MemoryExampleIndex(candidates=int(max(grid["neighbours"]))), embedder, classes=classes
    ).fit(rest, "fit")
    records = [
        JobRecord(str(t), str(d))
        for t, d in zip(held_df["title"], held_df["description"], strict=True)
    ]
    pos = {str(c): i for i, c in enumerate(voter.classes_)}
    gold = np.asarray([pos[str(c)] for c in held_df["code"]])
    base_pos = {str(c): j for j, c in enumerate(base.classes_)}
    base_cols = np.asarray([base_pos[str(c)] for c in voter.classes_])
    p_base = np.asarray(base.predict_proba(records), np.float64)[:, base_cols]
    found, exact = voter.evidence(records)
    held = HeldOut(p_base, found, exact, gold, voter)
    fixed = {"exact_weight": float(configured["exact_weight"]),
             "exact_trust": float(configured["exact_trust"])}  # fmt: skip

    order = np.random.default_rng(seed + 1).permutation(len(gold))
    halves = [np.sort(order[: len(gold) // 2]), np.sort(order[len(gold) // 2 :])]
    every = np.arange(len(gold))
    on_a, on_b, on_all = grid_search(held, [halves[0], halves[1], every], fixed=fixed, grid=grid)
    chosen = {0: on_b, 1: on_a}  # half j is scored with the settings chosen on the other half
    out_plain, out_fit = np.zeros_like(p_base), np.zeros_like(p_base)
    for j, rows_j in enumerate(halves):
        s = chosen[j]
        t = held.temperature_for(s, halves[1 - j])
        out_plain[rows_j] = held.proba({**s, "blend_temperature": 1.0}, rows_j)
        out_fit[rows_j] = held.proba({**s, "blend_temperature": t}, rows_j)
    settings = {**on_all, "blend_temperature": held.temperature_for(on_all, every)}
    trust = fixed["exact_trust"]
    return {
        "format_version": FIT_FORMAT,
        "settings": {
            k: float(settings[k]) if k != "neighbours" else int(settings[k]) for k in FIT_KEYS
        },  # fmt: skip
        "held_out": int(len(gold)),
        "held_out_titles": int(held_df["key"].nunique()),
        "held_out_from": "store" if untrained is None else "titles the model never trained on",
        "voting_examples": int(len(rest)),
        "seed": int(seed),
        "rows": int(rows),
        "share": float(share),
        "figures": {
            "base": held.figures(p_base, every, 0.0),
            "configured": held.figures(held.proba(configured), every, trust),
            "fitted, no temperature (cross-fitted)": held.figures(out_plain, every, trust),
            "fitted (cross-fitted)": held.figures(out_fit, every, trust),
        },
    }


def fit_path(store: ExampleStore, predictor_id: str) -> Path:
    """Where the fit for the coder ``predictor_id`` lives: one file per coder beside the store."""
    return store.directory / FITS_DIR / f"{coder_digest(predictor_id)}.json"


def save_fit(
    store: ExampleStore, fit: Mapping[str, Any], *, predictor_id: str, content_hash: str
) -> Path:
    """Write ``fit`` for the coder ``predictor_id`` (named by digest) and the store content."""
    doc = {
        **fit,
        "coder": coder_digest(predictor_id),
        "store": content_hash,
        "store_size": len(store),
        "fitted_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    path = fit_path(store, predictor_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def load_fit(store: ExampleStore, predictor_id: str) -> dict[str, Any] | None:
    """The fit for the coder ``predictor_id``, or None without one; a fit of an unknown
    format, or one that names another coder, fails loudly."""
    path = fit_path(store, predictor_id)
    if not path.is_file():
        return None
    doc = json.loads(path.read_text())
    if doc.get("format_version") != FIT_FORMAT:
        raise ValueError(f"{path}: examples fit format {doc.get('format_version')} unknown")
    if doc.get("coder") != coder_digest(predictor_id):
        raise ValueError(f"{path}: the fit names another coder ({doc.get('coder')})")
    return dict(doc)


def fit_count(store: ExampleStore) -> int:
    """How many coders have a fit for this store."""
    return len(list((store.directory / FITS_DIR).glob("*.json")))


def latest_fit(store: ExampleStore) -> dict[str, Any] | None:
    """The store's most recent fit, for any coder (None without one)."""
    docs = [json.loads(f.read_text()) for f in (store.directory / FITS_DIR).glob("*.json")]
    return max(docs, key=lambda d: str(d.get("fitted_at", "")), default=None)
