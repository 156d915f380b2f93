"""RAG labeler: retrieve the top-k codes for a record, let the LLM choose among them.

It cleans noisy training labels: for every record the candidates come from the code index, the
LLM picks one and scores each candidate's relevance (prompt ``rag_pick.v1``). Only a code among
the candidates is accepted; any other answer is recorded as ``rejected`` and never written as a
code. ``label_file`` (what ``autocoder label`` runs) compares the choice with the record's given
label and flags labels that look wrong (``suspect_label``).

``RAGLabeler`` follows the predictor contract: ``fit`` records ``classes_`` (the taxonomy's leaf
codes), ``predict_proba`` spreads the normalised relevance scores over ``classes_`` (the chosen
code always gets the largest share) and falls back to the retrieval probabilities when the LLM
answer was rejected or failed; ``predict`` returns the chosen code.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from autocoder.coding.predictor import Retriever
from autocoder.io import read_table, write_table
from autocoder.llm.cache import LLMCache
from autocoder.llm.prompts import PromptTemplate, load_prompt
from autocoder.llm.tasks import (
    AnswerError,
    Model,
    parse_rag_pick,
    rag_pick_request,
    run_requests,
)
from autocoder.records import JobRecord, RecordsLike, as_records, clean_text, table_texts
from autocoder.taxonomy.model import Taxonomy

log = logging.getLogger("autocoder.labeler")


OUTPUT_COLUMNS = [
    "row",
    "id",
    "title",
    "duties",
    "given_code",
    "chosen_code",
    "chosen_title",
    "status",
    "agrees",
    "suspect_label",
    "given_in_candidates",
    "given_relevance",
    "chosen_relevance",
    "retrieval_top1",
    "candidates",
    "relevance",
    "rejected_answer",
    "rationale",
    "error",
    "prompt_version",
    "model",
]


@dataclass
class LabelResult:
    candidates: list[str]
    retrieval_scores: list[float]
    status: str  # "ok" | "rejected" | "error:<kind>"
    code: str = ""
    scores: dict[str, float] = field(default_factory=dict)
    rationale: str = ""
    rejected_answer: str = ""
    error: str = ""


def _apply_answer(res: LabelResult, answer: dict[str, Any] | Exception, row: int) -> None:
    """Record the LLM's answer (or its failure) for one record in ``res``."""
    if isinstance(answer, Exception):
        res.status = f"error:{type(answer).__name__}"
        res.error = str(answer)
        return
    try:
        pick = parse_rag_pick(answer, res.candidates)
    except AnswerError as exc:
        res.status = "rejected"
        res.rejected_answer = exc.rejected_code or ""
        res.error = str(exc)
        log.warning("record %d: rejected LLM answer: %s", row, exc)
        return
    res.status = "ok"
    res.code = pick.code
    res.scores = pick.scores
    res.rationale = pick.rationale


class RAGLabeler:
    """Retrieve ``k`` candidates with ``retriever`` (``rank(X)`` like ``RetrievalCoder``), ask
    ``model`` (``LLMModel`` or any callable with its signature) to choose one."""

    def __init__(
        self,
        model: Model,
        retriever: Retriever,
        taxonomy: Taxonomy,
        *,
        k: int = 5,
        prompt_version: str = "v1",
        prompt_dir: str | Path | None = None,
        cache: LLMCache | None = None,
        concurrency: int | None = None,
        max_definition_chars: int = 300,
        show_progress: bool = False,
    ) -> None:
        self.model = model
        self.retriever = retriever
        self.taxonomy = taxonomy
        self.k = k
        self.prompt_version = prompt_version
        self.prompt_dir = prompt_dir
        self.cache = cache
        self.concurrency = concurrency
        self.max_definition_chars = max_definition_chars
        self.show_progress = show_progress

    def fit(self, X: Any = None, y: Any = None) -> RAGLabeler:
        """Nothing to learn: loads the prompt and records the taxonomy's leaf codes."""
        self.prompt_: PromptTemplate = load_prompt(
            "rag_pick", self.prompt_version, override=self.prompt_dir
        )
        self.classes_ = np.asarray(sorted(self.taxonomy.leaf_codes()))
        self._pos = {c: i for i, c in enumerate(self.classes_)}
        self.run_stats_: dict[str, int] = {"requests": 0, "cache_hits": 0, "errors": 0}
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "classes_"):
            raise RuntimeError("RAGLabeler is not fitted; call fit() first")

    def label(self, X: RecordsLike) -> list[LabelResult]:
        """One ``LabelResult`` per record (empty records get ``error:empty_text``)."""
        self._check_fitted()
        records = as_records(X)
        results: list[LabelResult] = [LabelResult([], [], "error:empty_text") for _ in records]
        todo = [i for i, r in enumerate(records) if r.title or r.duties]
        if not todo:
            return results
        codes, probs, _ = self.retriever.rank([records[i] for i in todo])
        requests = []
        for i, row_codes, row_probs in zip(todo, codes, probs, strict=True):
            cands = [str(c) for c in row_codes[: self.k]]
            results[i] = LabelResult(cands, [float(p) for p in row_probs[: self.k]], "pending")
            requests.append(
                rag_pick_request(
                    self.prompt_,
                    records[i],
                    cands,
                    self.taxonomy,
                    max_definition_chars=self.max_definition_chars,
                )
            )
        answers, stats = run_requests(
            self.model,
            requests,
            cache=self.cache,
            concurrency=self.concurrency,
            show_progress=self.show_progress,
            desc="label",
        )
        self.run_stats_["requests"] += stats.requests
        self.run_stats_["cache_hits"] += stats.cache_hits
        self.run_stats_["errors"] += stats.errors
        for i, answer in zip(todo, answers, strict=True):
            _apply_answer(results[i], answer, i)
        return results

    def _proba_row(self, res: LabelResult) -> np.ndarray:
        row = np.zeros(len(self.classes_), dtype=np.float64)
        if res.status == "ok":
            scores = dict(res.scores)
            top = max(scores.values(), default=0.0)
            scores[res.code] = max(scores.get(res.code, 0.0), top, 1e-6)
            total = sum(scores.values())
            for code, s in scores.items():
                if code in self._pos:
                    row[self._pos[code]] = s / total
        else:
            for code, p in zip(res.candidates, res.retrieval_scores, strict=True):
                if code in self._pos:
                    row[self._pos[code]] = p
        return row

    def predict_proba(self, X: RecordsLike) -> np.ndarray:
        self._check_fitted()
        rows = [self._proba_row(r) for r in self.label(X)]
        if not rows:
            return np.zeros((0, len(self.classes_)), dtype=np.float32)
        return np.vstack(rows).astype(np.float32)

    def predict(self, X: RecordsLike) -> np.ndarray:
        """The chosen code; the retrieval top-1 when the answer was rejected or failed."""
        self._check_fitted()
        out = []
        for res in self.label(X):
            out.append(
                res.code if res.status == "ok" else (res.candidates[0] if res.candidates else "")
            )
        return np.asarray(out, dtype=object)


# --- the CLI's entry point (``api.label`` builds the parts from the settings) -----------------


@dataclass
class LabelInput:
    """The rows to label: ids, records and the given (possibly noisy) codes."""

    ids: list[str]
    records: list[JobRecord]
    given: list[str]


def read_label_input(
    input_path: Path,
    *,
    label_column: str,
    id_column: str,
    title_column: str,
    description_column: str,
    limit: int | None = None,
) -> LabelInput:
    """Read the table to label; rows without an id column are numbered from 0."""
    df = read_table(input_path, string_columns=(id_column, label_column))
    if limit is not None:
        df = df.head(limit).reset_index(drop=True)
    titles, duties = table_texts(
        df,
        title_column=title_column,
        description_column=description_column,
        source=str(input_path),
    )
    n = len(df)
    ids = (
        [clean_text(v) for v in df[id_column]]
        if id_column in df.columns
        else list(map(str, range(n)))
    )
    given = [clean_text(v) for v in df[label_column]] if label_column in df.columns else [""] * n
    records = [JobRecord(t, d) for t, d in zip(titles, duties, strict=True)]
    return LabelInput(ids, records, given)


def _judgement(
    res: LabelResult, given: str, taxonomy: Taxonomy, suspect_threshold: float
) -> dict[str, Any]:
    """How the LLM's choice relates to the given label (the ``agrees``/``suspect`` columns)."""
    ok = res.status == "ok"
    given_rel = (res.scores.get(given, 0.0) if ok else None) if given else None
    suspect: bool | None = None
    if given and given not in taxonomy:
        suspect = True
    elif given and ok:
        suspect = res.code != given and (given_rel or 0.0) < suspect_threshold
    return {
        "agrees": (res.code == given) if (given and ok) else None,
        "suspect_label": suspect,
        "given_in_candidates": (given in res.candidates) if given and res.candidates else None,
        "given_relevance": given_rel,
        "chosen_relevance": res.scores.get(res.code) if ok else None,
    }


def _output_row(
    i: int, data: LabelInput, res: LabelResult, taxonomy: Taxonomy, suspect_threshold: float
) -> dict[str, Any]:
    given = data.given[i]
    return {
        "row": i,
        "id": data.ids[i],
        "title": data.records[i].title,
        "duties": data.records[i].duties,
        "given_code": given,
        "chosen_code": res.code,
        "chosen_title": taxonomy.get(res.code).title if res.code else "",
        "status": res.status,
        **_judgement(res, given, taxonomy, suspect_threshold),
        "retrieval_top1": res.candidates[0] if res.candidates else "",
        "candidates": ";".join(res.candidates),
        "relevance": json.dumps(res.scores) if res.scores else "",
        "rejected_answer": res.rejected_answer,
        "rationale": res.rationale,
        "error": res.error,
    }


def _output_table(rows: list[dict[str, Any]], prompt_id: str, model_name: str) -> pd.DataFrame:
    out = pd.DataFrame(rows, columns=OUTPUT_COLUMNS)
    out["prompt_version"] = prompt_id
    out["model"] = model_name
    for col in ("agrees", "suspect_label", "given_in_candidates"):
        out[col] = out[col].astype("boolean")
    for col in ("given_relevance", "chosen_relevance"):
        out[col] = pd.to_numeric(out[col]).astype("Float64")
    return out


def _rate(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def _rates(out: pd.DataFrame) -> dict[str, Any]:
    status = Counter(out["status"])
    labelled = out[out["given_code"] != ""]
    accepted = labelled[labelled["status"] == "ok"]
    retrieved = labelled[labelled["retrieval_top1"] != ""]
    suspects = int(out["suspect_label"].fillna(False).sum())
    errors: Counter[str] = Counter()
    for s, c in status.items():
        if str(s).startswith("error:"):
            errors[str(s).split(":", 2)[1]] += c
    return {
        "rows": len(out),
        "status": {str(s): int(c) for s, c in sorted(status.items())},
        "failed": sum(errors.values()),
        "errors": dict(sorted(errors.items())),
        "labelled_rows": len(labelled),
        "accepted_rate": _rate(status.get("ok", 0), len(out)),
        "rejected_rate": _rate(status.get("rejected", 0), len(out)),
        "agreement_rate": _rate(int(accepted["agrees"].sum()), len(accepted)),
        "retrieval_agreement_rate": _rate(
            int((retrieved["retrieval_top1"] == retrieved["given_code"]).sum()), len(retrieved)
        ),
        "given_in_candidates_rate": _rate(
            int(labelled["given_in_candidates"].fillna(False).sum()), len(retrieved)
        ),
        "suspect_labels": suspects,
        "suspect_rate": _rate(suspects, len(labelled)),
    }


def model_name(model: Model) -> str:
    """The model's name for provenance columns (``LLMModel.model``, else the type's name)."""
    return str(getattr(model, "model", type(model).__name__))


def label_file(
    input_path: str | Path,
    output_path: str | Path,
    *,
    taxonomy: Taxonomy,
    model: Model,
    retriever: Retriever,
    cache: LLMCache | None = None,
    label_column: str = "code",
    id_column: str = "id",
    title_column: str = "title",
    description_column: str = "description",
    k: int = 5,
    suspect_threshold: float = 0.5,
    limit: int | None = None,
    prompt_version: str = "v1",
    prompt_dir: str | Path | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Label every row of ``input_path`` with the RAG labeler; write ``output_path``.

    Output columns: ``row, id, title, duties, given_code, chosen_code, chosen_title, status``
    (``ok``/``rejected``/``error:...``), ``agrees`` (chosen == given; empty without a given
    label or an accepted answer), ``suspect_label``, ``given_in_candidates``,
    ``given_relevance``, ``chosen_relevance``, ``retrieval_top1``, ``candidates`` (``;``),
    ``relevance`` (JSON code -> score), ``rejected_answer``, ``rationale``, ``error``,
    ``prompt_version``, ``model``. A label is suspect when it is not a code of the taxonomy, or
    when the LLM chose another code and scored the given one below ``suspect_threshold`` (0 when
    it was not even retrieved). Returns a summary with agreement rates, ``failed`` (rows with an
    ``error:`` status) and ``errors`` (their count per reason).
    """
    input_path, output_path = Path(input_path), Path(output_path)
    data = read_label_input(
        input_path,
        label_column=label_column,
        id_column=id_column,
        title_column=title_column,
        description_column=description_column,
        limit=limit,
    )
    labeler = RAGLabeler(
        model,
        retriever,
        taxonomy,
        k=k,
        prompt_version=prompt_version,
        prompt_dir=prompt_dir,
        cache=cache,
        show_progress=show_progress,
    ).fit()
    results = labeler.label(data.records)
    rows = [_output_row(i, data, res, taxonomy, suspect_threshold) for i, res in enumerate(results)]
    out = _output_table(rows, labeler.prompt_.id, model_name(model))
    write_table(out, output_path)
    return _summary(input_path, output_path, out, labeler)


def _summary(
    input_path: Path, output_path: Path, out: pd.DataFrame, labeler: RAGLabeler
) -> dict[str, Any]:
    summary: dict[str, Any] = {"input": str(input_path), "output": str(output_path)}
    summary.update(_rates(out))
    summary.update(
        {
            "prompt_version": labeler.prompt_.id,
            "model": model_name(labeler.model),
            "llm_requests": labeler.run_stats_["requests"],
            "cache_hits": labeler.run_stats_["cache_hits"],
            "llm_errors": labeler.run_stats_["errors"],
        }
    )
    stats = getattr(labeler.model, "stats", None)
    if stats is not None and hasattr(stats, "to_dict"):
        summary["tokens"] = {"prompt": stats.prompt_tokens, "completion": stats.completion_tokens}
    return summary
