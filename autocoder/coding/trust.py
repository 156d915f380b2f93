"""Scores a statistician can trust: segment choice, calibrated confidence per level, partial codes.

:func:`score_records` codes every candidate segment of each title (:mod:`autocoder.segments`)
with the classifier and retrieval separately, keeps the candidate closest to the index, and
returns the mixture and the signals the calibrator reads. :func:`fit_trust` fits, on held-out
real titles, one calibrator per hierarchy level and the thresholds for target precisions;
:func:`assign_rows` gives every row its status (``coded`` / ``partial`` / ``review``) and the
assigned code, level and confidence. The fitted parameters are one JSON document
(:data:`SIDECAR`, stored next to a model's ``config.json``; for the retrieval coder alone, in
the workspace: :func:`autocoder.coding.loaded.retrieval_sidecar`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autocoder import segments as seg
from autocoder.coding import calibration as cal
from autocoder.coding.examples import WithExamples
from autocoder.coding.loaded import CALIBRATION_FORMAT, SIDECAR, LoadedCoder, pretrained_fits
from autocoder.coding.mixture import CombinedPredictor, mix
from autocoder.coding.retrieval import RetrievalCoder
from autocoder.config import CoderConfig
from autocoder.records import JobRecord
from autocoder.taxonomy.model import Taxonomy

#: Target precisions whose thresholds are fitted and stored with the calibration.
STORED_TARGETS = (0.8, 0.85, 0.9, 0.95, 0.97, 0.99)

#: Records scored per pass (bounds the candidates' probability matrices in memory).
CHUNK = 2048


@dataclass(frozen=True)
class SegmentOptions:
    """How the candidate to code is chosen (``segments.choose``): bonuses added to the index
    similarity of the whole title and of its first segment; ``enabled`` False: the title as
    written is the only candidate (no segments, no normalising)."""

    whole_bonus: float = 0.02
    first_bonus: float = 0.03
    enabled: bool = True


@dataclass
class Scores:
    """Per record the chosen candidate's distributions (columns ``classes``) and signals."""

    classes: np.ndarray
    proba: np.ndarray
    model_proba: np.ndarray | None
    retrieval_proba: np.ndarray | None
    max_similarity: np.ndarray
    n_segments: np.ndarray
    later_segment: np.ndarray
    n_words: np.ndarray
    text: list[str]


def _parts(predictor: Any) -> tuple[Any, RetrievalCoder, float, float]:
    """The classifier (or None), the retrieval coder, the weight and temperature."""
    if isinstance(predictor, CombinedPredictor):
        if not isinstance(predictor.retrieval, RetrievalCoder):
            raise TypeError("calibrated coding needs the retrieval coder inside the mixture")
        return (
            predictor.model,
            predictor.retrieval,
            predictor.retrieval_weight,
            predictor.temperature,
        )
    if isinstance(predictor, RetrievalCoder):
        return None, predictor, 1.0, 1.0
    raise TypeError(
        f"calibrated coding needs a retrieval coder or a model mixed with retrieval, "
        f"got {type(predictor).__name__}"
    )


def retrieval_scores(
    retrieval: RetrievalCoder, records: Sequence[JobRecord], classes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Retrieval's probabilities over ``classes`` and each record's similarity to the
    nearest index text (one search per record)."""
    pos = {str(c): j for j, c in enumerate(classes)}
    out = np.zeros((len(records), len(classes)), dtype=np.float64)
    best = np.zeros(len(records))
    res = retrieval.search(records)
    for i, (codes, sims, votes) in enumerate(zip(res.codes, res.scores, res.votes, strict=True)):
        best[i] = float(np.max(sims)) if len(sims) else 0.0
        for code, p in zip(codes, retrieval.probabilities(votes), strict=True):
            if code in pos:
                out[i, pos[code]] = p
    return out, best


@dataclass
class CandidateScores:
    """Every candidate's distributions and index similarity, flat over a batch of records."""

    classes: np.ndarray
    texts: list[str]
    owner: np.ndarray
    position: np.ndarray
    n_segments: np.ndarray
    model_proba: np.ndarray | None
    retrieval_proba: np.ndarray
    similarity: np.ndarray
    weight: float
    temperature: float


def candidate_scores(
    predictor: Any, records: Sequence[JobRecord], options: SegmentOptions
) -> CandidateScores:
    """Score every candidate segment of ``records`` with the classifier and retrieval."""
    model, retrieval, weight, temperature = _parts(predictor)
    classes = np.asarray(model.classes_ if model is not None else retrieval.classes_)
    cands = [
        seg.candidates(r.title) if options.enabled and r.title else seg.Candidates((r.title,), (0,))
        for r in records
    ]
    texts, owner, position = seg.flatten(cands)
    flat = [JobRecord(t, records[o].duties) for t, o in zip(texts, owner, strict=True)]
    p_ret, sim = retrieval_scores(retrieval, flat, classes)
    p_model = None if model is None else np.asarray(model.predict_proba(flat), np.float64)
    n_segments = np.asarray([c.n_segments for c in cands], dtype=np.float64)
    return CandidateScores(
        classes, texts, owner, position, n_segments, p_model, p_ret, sim, weight, temperature
    )


def select(cs: CandidateScores, chosen: np.ndarray) -> Scores:
    """The :class:`Scores` of one chosen candidate per record (``segments.choose``)."""
    p_model = None if cs.model_proba is None else cs.model_proba[chosen]
    p_ret = cs.retrieval_proba[chosen]
    proba = p_ret if p_model is None else mix(p_model, p_ret, cs.weight, cs.temperature)
    texts = [cs.texts[i] for i in chosen]
    return Scores(
        cs.classes,
        proba,
        p_model,
        p_ret,
        cs.similarity[chosen],
        cs.n_segments,
        (cs.position[chosen] > 1).astype(np.float64),
        np.asarray([len(t.split()) for t in texts], dtype=np.float64),
        texts,
    )


def choose(cs: CandidateScores, options: SegmentOptions) -> Scores:
    """The :class:`Scores` of the candidate ``options`` choose for each record of ``cs``."""
    chosen = seg.choose(
        cs.similarity,
        cs.owner,
        cs.position,
        whole_bonus=options.whole_bonus,
        first_bonus=options.first_bonus,
    )
    return select(cs, chosen)


def _score_chunk(predictor: Any, records: Sequence[JobRecord], options: SegmentOptions) -> Scores:
    return choose(candidate_scores(predictor, records, options), options)


def score_records(
    predictor: Any, records: Sequence[JobRecord], *, options: SegmentOptions | None = None
) -> Scores:
    """Score ``records`` (see the module docstring), :data:`CHUNK` records per pass."""
    options = options or SegmentOptions()
    parts = [
        _score_chunk(predictor, records[i : i + CHUNK], options)
        for i in range(0, len(records), CHUNK)
    ]
    if not parts:
        raise ValueError("no records to score")
    return concat(parts)


def _cat(parts: Sequence[Any], name: str) -> Any:
    vals = [getattr(p, name) for p in parts]
    return None if vals[0] is None else np.concatenate(vals)


def concat(parts: Sequence[Scores]) -> Scores:
    """The rows of several :class:`Scores` (same classes), in order."""
    return Scores(
        classes=parts[0].classes,
        proba=_cat(parts, "proba"),
        model_proba=_cat(parts, "model_proba"),
        retrieval_proba=_cat(parts, "retrieval_proba"),
        max_similarity=_cat(parts, "max_similarity"),
        n_segments=_cat(parts, "n_segments"),
        later_segment=_cat(parts, "later_segment"),
        n_words=_cat(parts, "n_words"),
        text=[t for p in parts for t in p.text],
    )


def take(scores: Scores, rows: np.ndarray) -> Scores:
    """The :class:`Scores` of ``rows`` (indices or a boolean mask)."""
    idx = np.nonzero(rows)[0] if np.asarray(rows).dtype == bool else np.asarray(rows)

    def part(v: np.ndarray | None) -> np.ndarray | None:
        return None if v is None else v[idx]

    return Scores(
        scores.classes,
        scores.proba[idx],
        part(scores.model_proba),
        part(scores.retrieval_proba),
        scores.max_similarity[idx],
        scores.n_segments[idx],
        scores.later_segment[idx],
        scores.n_words[idx],
        [scores.text[i] for i in idx],
    )


def take_candidates(cs: CandidateScores, rows: np.ndarray) -> CandidateScores:
    """The candidates of the records ``rows`` (indices, in order), renumbered from 0."""
    rows = np.asarray(rows, dtype=np.intp)
    keep = np.isin(cs.owner, rows)
    remap = np.full(len(cs.n_segments), -1, dtype=np.intp)
    remap[rows] = np.arange(len(rows))
    return CandidateScores(
        cs.classes,
        [t for t, k in zip(cs.texts, keep, strict=True) if k],
        remap[cs.owner[keep]],
        cs.position[keep],
        cs.n_segments[rows],
        None if cs.model_proba is None else cs.model_proba[keep],
        cs.retrieval_proba[keep],
        cs.similarity[keep],
        cs.weight,
        cs.temperature,
    )


def hierarchy(taxonomy: Taxonomy, classes: Sequence[str]) -> list[tuple[str, dict[str, str]]]:
    """The levels a row can be assigned at, finest first: ``(level name, class -> group)``;
    the first is the classes themselves, then each ancestor level of the taxonomy."""
    out: list[tuple[str, dict[str, str]]] = [
        (taxonomy.levels[taxonomy.leaf_level - 1], {str(c): str(c) for c in classes})
    ]
    for depth in range(taxonomy.leaf_level - 1, 0, -1):
        parent = {}
        for c in classes:
            group = taxonomy.parent(str(c), depth) if str(c) in taxonomy else None
            if group is not None:
                parent[str(c)] = group
        if parent:
            out.append((taxonomy.levels[depth - 1], parent))
    return out


@dataclass
class LevelScores:
    """Per level (finest first): its name, groups, each row's top group and features."""

    names: list[str]
    groups: list[np.ndarray]
    top: list[np.ndarray]
    x: list[np.ndarray]


def level_scores(scores: Scores, levels: Sequence[tuple[str, Mapping[str, str]]]) -> LevelScores:
    """The calibrator's features at every level (a group's probability = its descendants')."""
    classes = [str(c) for c in scores.classes]
    out = LevelScores([], [], [], [])
    for name, parent in levels:
        groups, matrix = cal.group_matrix(classes, parent)
        p = cal.level_proba(scores.proba, matrix)

        def at(q: np.ndarray | None, m: Any = matrix) -> np.ndarray | None:
            return None if q is None else cal.level_proba(q, m)

        x = cal.features(
            p,
            model_proba=at(scores.model_proba),
            retrieval_proba=at(scores.retrieval_proba),
            max_similarity=scores.max_similarity,
            n_segments=scores.n_segments,
            later_segment=scores.later_segment,
            n_words=scores.n_words,
        )
        out.names.append(name)
        out.groups.append(groups)
        out.top.append(p.argmax(axis=1))
        out.x.append(x)
    return out


def level_correct(
    ls: LevelScores,
    levels: Sequence[tuple[str, Mapping[str, str]]],
    gold: Sequence[frozenset[str]],
) -> list[np.ndarray]:
    """Per level, whether each row's top group is the group of one of its gold codes."""
    out = []
    for (_, parent), groups, top in zip(levels, ls.groups, ls.top, strict=True):
        wanted = [{parent[g] for g in codes if g in parent} for codes in gold]
        out.append(np.asarray([groups[t] in w for t, w in zip(top, wanted, strict=True)]))
    return out


def fit_trust(
    scores: Scores,
    gold: Sequence[frozenset[str]],
    levels: Sequence[tuple[str, Mapping[str, str]]],
    *,
    options: SegmentOptions,
    fitted_on: Mapping[str, Any],
    threshold_rows: np.ndarray | None = None,
) -> dict[str, Any]:
    """One calibrator per level, fitted on the held-out rows ``scores`` with acceptable codes
    ``gold``, and the thresholds of :data:`STORED_TARGETS`, chosen on the rows' out-of-fold
    confidence (``cal.out_of_fold``) with a margin (``cal.THRESHOLD_MARGIN_SD``); JSON-ready.
    ``threshold_rows`` (a mask): the rows whose gold is trusted to measure precision (default
    all); the calibrators learn from every row."""
    ls = level_scores(scores, levels)
    correct = level_correct(ls, levels, gold)
    keep = np.ones(len(gold), dtype=bool) if threshold_rows is None else np.asarray(threshold_rows)
    if keep.dtype != bool or keep.shape != (len(gold),) or not keep.any():
        raise ValueError("threshold_rows must be a boolean mask over the rows, with a row set")
    fitted, confidence = [], []
    for name, x, right in zip(ls.names, ls.x, correct, strict=True):
        params = cal.fit_calibrator(x, right)
        fitted.append({"name": name, "calibrator": params})
        confidence.append(cal.out_of_fold(x, right, kind=params["kind"])[keep])
    right_kept = [r[keep] for r in correct]
    return {
        "format_version": CALIBRATION_FORMAT,
        "segments": {
            "whole_bonus": options.whole_bonus,
            "first_bonus": options.first_bonus,
            "enabled": options.enabled,
        },
        "levels": fitted,
        "thresholds": {
            str(t): cal.fit_level_thresholds(
                confidence, right_kept, target=t, margin_sd=cal.THRESHOLD_MARGIN_SD
            )
            for t in STORED_TARGETS
        },
        "threshold_fit": {
            "confidence": "out of fold",
            "folds": cal.THRESHOLD_FOLDS,
            "rows": int(keep.sum()),
            "margin_sd": cal.THRESHOLD_MARGIN_SD,
        },
        "data": {
            "confidence": [np.round(c, 5).tolist() for c in confidence],
            "correct": [r.astype(int).tolist() for r in right_kept],
        },
        "fitted_on": dict(fitted_on),
    }


def thresholds_for(trust: Mapping[str, Any], target: float) -> list[dict[str, Any]]:
    """Per level the threshold for ``target`` precision: stored, else fitted now on the
    calibration data kept in ``trust``."""
    stored = trust["thresholds"].get(str(target))
    if stored is not None:
        return list(stored)
    data = trust["data"]
    conf = [np.asarray(c) for c in data["confidence"]]
    right = [np.asarray(r, dtype=bool) for r in data["correct"]]
    margin = float(trust.get("threshold_fit", {}).get("margin_sd", 0.0))
    return cal.fit_level_thresholds(conf, right, target=target, margin_sd=margin)


@dataclass
class Assigned:
    """Per row: calibrated confidence of the detailed top code, the assigned level index
    (-1 = none), code, level name and confidence, and the status."""

    confidence: np.ndarray
    level: np.ndarray
    code: list[str]
    level_name: list[str]
    assigned_confidence: np.ndarray
    status: list[str]


def assign_rows(
    trust: Mapping[str, Any],
    scores: Scores,
    levels: Sequence[tuple[str, Mapping[str, str]]],
    *,
    target: float | None = None,
    threshold: float | None = None,
    floor: np.ndarray | None = None,
) -> Assigned:
    """Statuses at a target precision (partial codes allowed), or at a bare ``threshold`` on
    the detailed confidence (``coded`` / ``review`` only). ``floor``: per row a lower bound on
    the detailed confidence (the trust coded examples of the very title give their code)."""
    ls = level_scores(scores, levels)
    names = [entry["name"] for entry in trust["levels"]]
    if names != ls.names:
        raise ValueError(f"calibration levels {names} differ from the taxonomy's {ls.names}")
    conf = [cal.calibrate(e["calibrator"], x) for e, x in zip(trust["levels"], ls.x, strict=True)]
    if floor is not None and len(conf):
        conf[0] = np.maximum(conf[0], np.asarray(floor, dtype=np.float64))
    if target is not None:
        thr = [t["threshold"] for t in thresholds_for(trust, target)]
    else:
        thr = [0.5 if threshold is None else threshold] + [None] * (len(conf) - 1)
    level = cal.assign(conf, thr)
    n = len(level)
    code = [str(ls.groups[lv][ls.top[lv][i]]) if lv >= 0 else "" for i, lv in enumerate(level)]
    assigned_conf = np.asarray(
        [conf[lv][i] if lv >= 0 else np.nan for i, lv in enumerate(level)], dtype=np.float64
    )
    status = ["coded" if lv == 0 else "partial" if lv > 0 else "review" for lv in level]
    return Assigned(
        conf[0] if n else np.zeros(0),
        level,
        code,
        [ls.names[lv] if lv >= 0 else "" for lv in level],
        assigned_conf,
        status,
    )


def save_trust(trust: Mapping[str, Any], model_dir: str | Path) -> Path:
    """Write the calibration sidecar into ``model_dir``."""
    return write_trust(trust, Path(model_dir) / SIDECAR)


def write_trust(trust: Mapping[str, Any], path: Path) -> Path:
    """Write a calibration document to ``path`` (its folder made; replaced atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(trust, separators=(",", ":")))
    tmp.replace(path)
    return path


def segment_options(trust: Mapping[str, Any] | None) -> SegmentOptions:
    """The segment choice the calibration was fitted with (defaults without one)."""
    if not trust:
        return SegmentOptions()
    return SegmentOptions(**trust.get("segments", {}))


def supports_segments(predictor: Any) -> bool:
    """Whether segments can be scored against the index: a retrieval coder, or a model
    mixed with one (either with coded examples voting)."""
    if isinstance(predictor, WithExamples):
        predictor = predictor.base
    return isinstance(predictor, RetrievalCoder) or (
        isinstance(predictor, CombinedPredictor) and isinstance(predictor.retrieval, RetrievalCoder)
    )


def examples_voted(predictor: Any, scores: Scores, records: Sequence[JobRecord]) -> Scores:
    """``scores`` (of ``predictor``'s base) with its coded examples' votes blended into the
    chosen candidate's distribution, as coding and ``calibrate --with-examples`` both score;
    unchanged for a predictor without examples."""
    if isinstance(predictor, WithExamples):
        scores.proba = predictor.blend_into(scores.proba, list(records))
    return scores


def exact_floor(
    predictor: Any, records: list[JobRecord], proba: np.ndarray, *, trust: float | None = None
) -> np.ndarray | None:
    """Per row the confidence coded examples of the very title give the row's top code
    (``WithExamples.exact_confidence``; 0 where they vote for another code or there are
    none); None for a predictor without examples. ``trust``: the exact-match trust a
    calibration fitted (:func:`fit_exact_trust`) instead of the office's ``exact_trust``."""
    if not isinstance(predictor, WithExamples):
        return None
    codes, exact = predictor.exact_confidence(records, trust=trust)
    if not len(proba):
        return np.zeros(0)
    top = np.asarray(predictor.classes_, dtype=object)[np.asarray(proba).argmax(axis=1)]
    return np.where(top == np.asarray(codes, dtype=object), exact, 0.0)


#: Calibration rows with an exact-title match needed to fit the exact-match trust (fewer:
#: the office's ``examples.exact_trust`` stays).
MIN_EXACT_ROWS = 30


def fit_exact_trust(
    predictor: Any, records: list[JobRecord], gold: Sequence[frozenset[str]]
) -> dict[str, Any] | None:
    """How far the coded examples of the very title can be trusted, measured on labeled
    held-out rows: ``rows`` with an exact-title match, ``right`` of them whose examples' code
    is acceptable, and ``trust`` = (right + 1) / (summed agreement share + 2), capped at 1, so
    that the floor ``trust x share`` is right as often as it says on these rows; ``trust``
    None below :data:`MIN_EXACT_ROWS` rows. None for a predictor without examples. Where the
    same title is coded differently row to row (an office's history), an exact match is far
    from certain; titles a reviewer answered are left out and keep the office's
    ``exact_trust`` (``WithExamples.exact_confidence``)."""
    if not isinstance(predictor, WithExamples):
        return None
    codes, share = predictor.voter.exact_agreement(records)
    share = np.where(predictor.voter.reviewed(records), 0.0, share)  # answers keep the rule
    matched = share > 0
    right = sum(c in g for c, g, m in zip(codes, gold, matched, strict=True) if m)
    rows = int(matched.sum())
    fitted = min(1.0, (right + 1) / (float(np.sum(share)) + 2)) if rows >= MIN_EXACT_ROWS else None
    return {"rows": rows, "right": int(right), "trust": fitted,
            "office_exact_trust": float(predictor.exact_trust)}  # fmt: skip


def fitted_exact_trust(trust: Mapping[str, Any] | None) -> float | None:
    """The exact-match trust a calibration fitted, or None (none fitted, or too few rows)."""
    value = ((trust or {}).get("exact") or {}).get("trust")
    return None if value is None else float(value)


@dataclass(frozen=True)
class Assigner:
    """What the batch coder needs to give rows their status and assigned code.

    ``trust``: the calibration sidecar (None: the top probability is the confidence, and
    ``threshold`` the bar for ``coded``); ``levels``: :func:`hierarchy` of the taxonomy;
    ``target``: the target precision (needs ``trust``), else ``threshold`` on the calibrated
    confidence; ``segments``: score title segments against the index."""

    levels: tuple[tuple[str, Mapping[str, str]], ...]
    threshold: float
    target: float | None = None
    trust: Mapping[str, Any] | None = None
    segments: bool = True

    def predict(
        self, predictor: Any, records: Sequence[JobRecord]
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """The ranking distribution over ``predictor.classes_`` and the per-row cells
        ``confidence, status, assigned_code, assigned_level, assigned_confidence``."""
        records = list(records)
        scores = self._scores(predictor, records)
        if scores is not None:
            scores = examples_voted(predictor, scores, records)
        proba = scores.proba if scores is not None else np.asarray(predictor.predict_proba(records))
        floor = exact_floor(predictor, records, proba, trust=fitted_exact_trust(self.trust))
        if scores is not None and self.trust is not None:
            a = assign_rows(
                self.trust, scores, self.levels, target=self.target, threshold=self.threshold,
                floor=floor,
            )  # fmt: skip
            return scores.proba, {
                "confidence": a.confidence,
                "status": a.status,
                "assigned_code": a.code,
                "assigned_level": a.level_name,
                "assigned_confidence": a.assigned_confidence,
            }
        classes = np.asarray(predictor.classes_, dtype=object)
        conf = proba.max(axis=1) if len(proba) else np.zeros(0)
        if floor is not None:
            conf = np.maximum(conf, floor)
        coded = conf >= self.threshold
        top = classes[proba.argmax(axis=1)] if len(proba) else np.zeros(0, dtype=object)
        return proba, {
            "confidence": conf,
            "status": np.where(coded, "coded", "review").tolist(),
            "assigned_code": np.where(coded, top, "").tolist(),
            "assigned_level": np.where(coded, self.levels[0][0], "").tolist(),
            "assigned_confidence": np.where(coded, conf, np.nan),
        }

    def _scores(self, predictor: Any, records: list[JobRecord]) -> Scores | None:
        """The segment scoring of ``records`` by the predictor's base (None: not scored by
        segments; the predictor's own probabilities are used)."""
        if not (self.segments and supports_segments(predictor)):
            return None
        base = predictor.base if isinstance(predictor, WithExamples) else predictor
        return score_records(base, records, options=segment_options(self.trust))

    def settings(self) -> dict[str, Any]:
        """What enters the coding job's key."""
        digest = ""
        if self.trust is not None:
            import hashlib

            raw = json.dumps({k: v for k, v in self.trust.items() if k != "data"}, sort_keys=True)
            digest = hashlib.sha256(raw.encode()).hexdigest()[:16]
        return {"target_precision": self.target, "calibration": digest, "segments": self.segments}

    def describe(self) -> dict[str, Any]:
        """The thresholds in use and the precision each was fitted to (for the summary)."""
        if self.trust is None:
            return {"calibrated": False, "threshold": self.threshold}
        if self.target is None:
            return {"calibrated": True, "threshold": self.threshold}
        fitted = thresholds_for(self.trust, self.target)
        return {
            "calibrated": True,
            "target_precision": self.target,
            "levels": [
                {"level": name, **fit} for (name, _), fit in zip(self.levels, fitted, strict=True)
            ],
        }


def usable_calibration(coder: LoadedCoder) -> Mapping[str, Any] | None:
    """``coder``'s calibration when it can be applied (it scores segments against the index:
    retrieval, or a model mixed with it), else None; what ``coder_assigner`` decides by."""
    return coder.calibration if supports_segments(coder.predictor) else None


def uncalibrated_note(coder: LoadedCoder, options: CoderConfig) -> str:
    """Why the configured ``options.target_precision`` does not apply to ``coder`` (it has no
    calibration, so rows are coded at the bare ``options.threshold`` on the top probability),
    or "" when it applies or none is configured."""
    if options.target_precision is None or usable_calibration(coder) is not None:
        return ""
    outcome = (
        f"so `coded` means only a top probability >= {options.threshold}, with no partial codes"
    )
    if coder.calibration is not None:  # a sidecar, but the coder is not mixed with retrieval
        return (
            f"coder.target_precision {options.target_precision} does not apply: this model's "
            f"calibration is for it mixed with retrieval and it is coded alone, {outcome}; "
            "code it mixed with retrieval (`coder.retrieval_weight` unset or > 0)"
        )
    what = "retrieval alone" if coder.model_dir is None else "this model"
    packaged = (
        coder.model_dir is None and coder.taxonomy is not None and pretrained_fits(coder.taxonomy)
    )
    return (
        f"coder.target_precision {options.target_precision} does not apply: {what} has no "
        f"calibration, {outcome}; fit one with `autocoder calibrate FILE --model "
        "MODEL|retrieval` on labeled real titles"
        + (", or code with `--model pretrained` (calibrated)" if packaged else "")
    )


def coder_assigner(coder: LoadedCoder, options: CoderConfig) -> Assigner:
    """How ``coder``'s rows get their status: its calibration (a model's sidecar, or the
    retrieval coder's in the workspace) and ``options.target_precision`` when both are
    there, else ``options.threshold`` (on the calibrated confidence with a calibration, on the
    top probability without)."""
    predictor = coder.predictor
    sidecar = usable_calibration(coder)
    classes = [str(c) for c in predictor.classes_]
    if coder.taxonomy is not None:
        levels = tuple(hierarchy(coder.taxonomy, classes))
    else:  # a bare predictor: one level, its codes
        levels = (("leaf", {c: c for c in classes}),)
    return Assigner(
        levels=levels,
        threshold=options.threshold,
        target=options.target_precision if sidecar is not None else None,
        trust=sidecar,
        segments=options.segment_titles,
    )


def describe_thresholds(calibration: Mapping[str, Any]) -> str:
    """``Assigner.describe()`` as text: one line per level, the threshold in use and the
    precision it was fitted to."""
    if not calibration.get("target_precision"):
        kind = "calibrated" if calibration.get("calibrated") else "uncalibrated"
        return f"threshold {calibration.get('threshold')} on the {kind} confidence"
    lines = [f"target precision {calibration['target_precision']}:"]
    for lv in calibration["levels"]:
        if lv["threshold"] is None:
            lines.append(f"  {lv['level']}: never assigned (no threshold reaches the target)")
        else:
            lines.append(
                f"  {lv['level']}: threshold {lv['threshold']:.4f}, fitted precision "
                f"{lv['precision']:.3f} on {lv['share']:.1%} of the calibration rows"
            )
    return "\n".join(lines)
