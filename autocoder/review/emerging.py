"""Emerging occupations: records no code fits, grouped into candidate new occupations.

Candidates are the records reviewers flagged as *new / emerging*, and records whose best
similarity to any code text of the index is below ``min_similarity`` (far from every code).
Their embeddings (L2-normalised) are clustered with HDBSCAN; each cluster is described by its
size, representative titles (closest to the centroid), frequent terms (c-TF-IDF over the
clusters), nearest codes (index search with the centroid) and, when an LLM endpoint is
configured, a name from the prompt ``emerging_name.v1``. ``write_report`` writes Markdown and
CSV; ``emerging_report`` is what ``autocoder review emerging -o REPORT`` runs.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from autocoder.config import Settings
from autocoder.records import JobRecord, clean_text, normalize_text
from autocoder.workspace import Workspace

if TYPE_CHECKING:
    from autocoder.coding.loaded import LoadedCoder

log = logging.getLogger(__name__)

DEFAULT_MIN_SIMILARITY = 0.5
DEFAULT_MIN_CLUSTER_SIZE = 5
PROMPT = ("emerging_name", "v1")
CSV_COLUMNS = [
    "cluster",
    "size",
    "flagged",
    "far",
    "name",
    "representative_titles",
    "terms",
    "nearest_codes",
    "mean_best_similarity",
    "record_ids",
]
_STOP = frozenset(
    "a an and the of for in on at to with by or from as is are be our your we you job jobs "
    "work working position role new senior junior assistant ii iii iv".split()
)


@dataclass
class Cluster:
    label: int
    ids: list[str]
    titles: list[str]
    representative: list[str]
    terms: list[str]
    nearest: list[tuple[str, str, float]]  # code, title, similarity
    flagged: int
    far: int
    mean_best_similarity: float
    name: str = ""
    rationale: str = ""

    @property
    def size(self) -> int:
        return len(self.ids)

    def row(self) -> dict[str, Any]:
        return {
            "cluster": self.label,
            "size": self.size,
            "flagged": self.flagged,
            "far": self.far,
            "name": self.name,
            "representative_titles": "; ".join(self.representative),
            "terms": ", ".join(self.terms),
            "nearest_codes": "; ".join(f"{c} {t} ({s:.2f})" for c, t, s in self.nearest),
            "mean_best_similarity": round(self.mean_best_similarity, 4),
            "record_ids": ";".join(self.ids),
        }


@dataclass
class EmergingResult:
    clusters: list[Cluster]
    candidates: pd.DataFrame  # id, title, description, source, best_similarity, cluster
    params: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        c = self.candidates
        return {
            "candidates": int(len(c)),
            "flagged": int((c["source"] != "far").sum()) if len(c) else 0,
            "far": int((c["source"] != "flagged").sum()) if len(c) else 0,
            "clusters": len(self.clusters),
            "unclustered": int((c["cluster"] < 0).sum()) if len(c) else 0,
            "named": sum(bool(cl.name) for cl in self.clusters),
            **self.params,
        }


# --- candidates ---------------------------------------------------------------------------------
def _frame(df: pd.DataFrame | None) -> pd.DataFrame:
    cols = ["id", "title", "description"]
    if df is None or not len(df):
        return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    out = pd.DataFrame({c: df[c].map(clean_text) if c in df.columns else "" for c in cols})
    return out[(out["title"] != "") | (out["description"] != "")]


def flagged_records(feedback: pd.DataFrame) -> pd.DataFrame:
    """Records at least one reviewer marked new / emerging (one row per project and id)."""
    if not len(feedback) or "emerging" not in feedback.columns:
        return _frame(None)
    hits = feedback[feedback["emerging"].astype(bool)]
    return _frame(hits.drop_duplicates(["project", "id"] if "project" in hits else ["id"]))


def best_similarity(index: Any, vectors: np.ndarray, k: int = 3) -> tuple[np.ndarray, list]:
    """Per row: the highest similarity to any code text, and the ``k`` nearest codes."""
    if not len(vectors):
        return np.zeros(0), []
    res = index.search(np.asarray(vectors, dtype=np.float32), k)
    best = np.asarray([float(s[0]) if len(s) else -1.0 for s in res.scores])
    nearest = [
        list(zip(c, map(float, s), strict=True)) for c, s in zip(res.codes, res.scores, strict=True)
    ]
    return best, nearest


def select_candidates(
    flagged: pd.DataFrame,
    records: pd.DataFrame,
    flagged_vectors: np.ndarray,
    record_vectors: np.ndarray,
    index: Any,
    *,
    min_similarity: float = DEFAULT_MIN_SIMILARITY,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Flagged records plus records whose best code similarity is below ``min_similarity``.

    Returns the candidates (``id, title, description, source, best_similarity``; ``source`` is
    ``flagged``, ``far`` or ``flagged+far``) and their embeddings; a record in both is kept once.
    """
    f_best, _ = best_similarity(index, flagged_vectors)
    r_best, _ = best_similarity(index, record_vectors)
    far = r_best < min_similarity
    f = flagged.assign(source="flagged", best_similarity=f_best)
    r = records[far].assign(source="far", best_similarity=r_best[far])
    both = pd.concat([f, r], ignore_index=True)
    parts = [
        np.asarray(v, dtype=np.float32)[mask]
        for v, mask in ((flagged_vectors, np.ones(len(f), bool)), (record_vectors, far))
        if mask.any()
    ]
    vectors = np.vstack(parts) if parts else np.zeros((0, 1), dtype=np.float32)
    key = both["title"].map(normalize_text) + "\x00" + both["description"].map(normalize_text)
    first = ~key.duplicated()
    sources = both.groupby(key)["source"].agg(lambda s: "+".join(sorted(set(s))))
    both["source"] = key.map(sources)
    return both[first].reset_index(drop=True), vectors[first.to_numpy()]


# --- clusters -----------------------------------------------------------------------------------
def _unit(vectors: np.ndarray) -> np.ndarray:
    X = np.asarray(vectors, dtype=np.float64)
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


def cluster_labels(
    vectors: np.ndarray,
    *,
    min_cluster_size: int = DEFAULT_MIN_CLUSTER_SIZE,
    min_samples: int | None = None,
) -> np.ndarray:
    """HDBSCAN labels on L2-normalised embeddings (-1 = not in any cluster)."""
    from sklearn.cluster import HDBSCAN

    if min_cluster_size < 2:
        raise ValueError(f"min_cluster_size must be >= 2, got {min_cluster_size}")
    if len(vectors) < min_cluster_size:
        return np.full(len(vectors), -1, dtype=np.int64)
    model = HDBSCAN(min_cluster_size=min_cluster_size, min_samples=min_samples, copy=True)
    return np.asarray(model.fit_predict(_unit(vectors)), dtype=np.int64)


def tokens(text: str) -> list[str]:
    return [
        w
        for w in re.findall(r"[a-z][a-z0-9+#\-]*[a-z0-9+#]|[a-z]", text.lower())
        if len(w) > 2 and w not in _STOP
    ]


def cluster_terms(docs: dict[int, list[str]], n: int = 6) -> dict[int, list[str]]:
    """The ``n`` most distinctive words per cluster: c-TF-IDF over the clusters' texts."""
    counts = {c: Counter(w for t in texts for w in tokens(t)) for c, texts in docs.items()}
    total: Counter[str] = Counter()
    for cnt in counts.values():
        total.update(cnt)
    avg = max(1.0, sum(total.values()) / max(1, len(counts)))
    out: dict[int, list[str]] = {}
    for c, cnt in counts.items():
        size = max(1, sum(cnt.values()))
        score = {w: (k / size) * math.log(1 + avg / total[w]) for w, k in cnt.items()}
        ranked = sorted(score, key=lambda w: (-cnt[w], -score[w], w))
        out[c] = ranked[:n]
    return out


def describe_clusters(
    candidates: pd.DataFrame,
    vectors: np.ndarray,
    labels: np.ndarray,
    index: Any,
    code_titles: dict[str, str],
    *,
    n_titles: int = 8,
    n_codes: int = 3,
) -> list[Cluster]:
    """One ``Cluster`` per HDBSCAN label, largest first."""
    X = _unit(vectors) if len(vectors) else np.zeros((0, 1))
    docs = {
        int(c): [
            f"{t} {d}"
            for t, d in zip(
                candidates["title"][labels == c],
                candidates["description"][labels == c],
                strict=True,
            )
        ]
        for c in sorted(set(labels.tolist()) - {-1})
    }
    terms = cluster_terms(docs)
    clusters = []
    for c in docs:
        members = np.flatnonzero(labels == c)
        centroid = _unit(X[members].mean(axis=0, keepdims=True))
        order = members[np.argsort(-(X[members] @ centroid[0]), kind="stable")]
        reps = list(dict.fromkeys(candidates["title"].iloc[order].map(clean_text)))
        res = index.search(centroid.astype(np.float32), n_codes)
        nearest = [
            (code, code_titles.get(code, ""), float(s))
            for code, s in zip(res.codes[0], res.scores[0], strict=True)
        ]
        src = candidates["source"].iloc[members]
        clusters.append(
            Cluster(
                label=c,
                ids=[str(i) for i in candidates["id"].iloc[members]],
                titles=list(candidates["title"].iloc[members]),
                representative=[t for t in reps if t][:n_titles],
                terms=terms[c],
                nearest=nearest,
                flagged=int(src.str.contains("flagged").sum()),
                far=int(src.str.contains("far").sum()),
                mean_best_similarity=float(candidates["best_similarity"].iloc[members].mean()),
            )
        )
    clusters.sort(key=lambda cl: (-cl.size, cl.label))
    return clusters


# --- names from the LLM -------------------------------------------------------------------------
def naming_requests(clusters: list[Cluster], prompt: Any, taxonomy_name: str) -> list[Any]:
    from autocoder.llm.tasks import LLMRequest

    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 80},
            "rationale": {"type": "string", "maxLength": 300},
        },
        "required": ["name", "rationale"],
    }
    requests = []
    for cl in clusters:
        messages = prompt.render(
            taxonomy=taxonomy_name,
            titles="\n".join(f"- {t}" for t in cl.representative),
            terms=", ".join(cl.terms) or "(none)",
            nearest="\n".join(f"- {c} - {t}" for c, t, _ in cl.nearest) or "- (none)",
        )
        requests.append(LLMRequest(prompt.id, messages, schema))
    return requests


def name_clusters(
    clusters: list[Cluster], model: Any, prompt: Any, *, taxonomy_name: str, cache: Any = None
) -> int:
    """Ask ``model`` for each cluster's name; returns how many were named (failures are logged
    and leave the name empty, so one bad answer never loses the report)."""
    from autocoder.llm.tasks import run_requests

    if not clusters:
        return 0
    answers, _ = run_requests(model, naming_requests(clusters, prompt, taxonomy_name), cache=cache)
    named = 0
    for cl, answer in zip(clusters, answers, strict=True):
        if isinstance(answer, Exception):
            log.warning("no name for cluster %s: %s", cl.label, answer)
            continue
        name = " ".join(str(answer.get("name") or "").split())[:80]
        if not name:
            log.warning("cluster %s: the answer has no name: %r", cl.label, answer)
            continue
        cl.name, cl.rationale = name, " ".join(str(answer.get("rationale") or "").split())
        named += 1
    return named


# --- report -------------------------------------------------------------------------------------
def report_paths(output: str | Path) -> tuple[Path, Path]:
    """``REPORT.md`` and ``REPORT.csv`` for ``-o REPORT[.md|.csv]``; a directory gets
    ``emerging.md`` / ``emerging.csv`` inside."""
    out = Path(output)
    if out.suffix.lower() in (".md", ".csv"):
        return out.with_suffix(".md"), out.with_suffix(".csv")
    return out / "emerging.md", out / "emerging.csv"


def _markdown(result: EmergingResult) -> str:
    s = result.summary()
    lines = [
        "# Emerging occupations",
        "",
        f"{s['candidates']} candidate records ({s['flagged']} flagged by reviewers, {s['far']} far "
        f"from every code: best similarity < {s.get('min_similarity', '?')}); "
        f"{s['clusters']} clusters (HDBSCAN, min cluster size {s.get('min_cluster_size', '?')}), "
        f"{s['unclustered']} records in no cluster.",
        "",
    ]
    for cl in result.clusters:
        title = cl.name or f"cluster {cl.label}"
        lines += [
            f"## {title} ({cl.size} records)",
            "",
            f"- flagged by reviewers: {cl.flagged}; far from every code: {cl.far}; mean best "
            f"similarity {cl.mean_best_similarity:.2f}",
            f"- frequent terms: {', '.join(cl.terms) or '-'}",
            "- nearest codes: "
            + ("; ".join(f"{c} {t} ({sim:.2f})" for c, t, sim in cl.nearest) or "-"),
        ]
        if cl.rationale:
            lines.append(f"- LLM: {cl.rationale}")
        lines += ["- representative titles:", *[f"  - {t}" for t in cl.representative], ""]
    return "\n".join(lines) + "\n"


def write_report(result: EmergingResult, output: str | Path) -> tuple[Path, Path]:
    md, csv = report_paths(output)
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text(_markdown(result))
    pd.DataFrame([cl.row() for cl in result.clusters], columns=CSV_COLUMNS).to_csv(csv, index=False)
    return md, csv


# --- the whole step -----------------------------------------------------------------------------
def find_emerging(
    flagged: pd.DataFrame,
    records: pd.DataFrame,
    embed: Any,
    index: Any,
    code_titles: dict[str, str],
    *,
    min_similarity: float = DEFAULT_MIN_SIMILARITY,
    min_cluster_size: int = DEFAULT_MIN_CLUSTER_SIZE,
    min_samples: int | None = None,
) -> EmergingResult:
    """Candidates, clusters and their descriptions (no LLM); ``embed(list[JobRecord])`` gives
    embeddings in the space of ``index`` (``index.search(vectors, k)``)."""
    flagged, records = _frame(flagged), _frame(records)

    def vectors(df: pd.DataFrame) -> np.ndarray:
        recs = [JobRecord(t, d) for t, d in zip(df["title"], df["description"], strict=True)]
        return np.asarray(embed(recs), dtype=np.float32) if recs else np.zeros((0, 1), np.float32)

    cands, X = select_candidates(
        flagged, records, vectors(flagged), vectors(records), index, min_similarity=min_similarity
    )
    labels = cluster_labels(X, min_cluster_size=min_cluster_size, min_samples=min_samples)
    cands = cands.assign(cluster=labels)
    clusters = describe_clusters(cands, X, labels, index, code_titles) if len(cands) else []
    params = {"min_similarity": min_similarity, "min_cluster_size": min_cluster_size}
    return EmergingResult(clusters, cands, params)


def queued_records(ws: Workspace, project: str | None = None) -> pd.DataFrame:
    """The records queued for review (all projects, or one)."""
    from autocoder.review import queue

    projects = [project] if project else queue.list_projects(ws)
    rows = []
    for p in projects:
        tasks = [*queue.pending_tasks(ws, p), *queue.sent_tasks(ws, p).values()]
        rows += [{"id": t.record_id, "title": t.title, "description": t.description} for t in tasks]
    return _frame(pd.DataFrame(rows, columns=["id", "title", "description"]))


def emerging_report(
    coder: LoadedCoder,
    settings: Settings,
    ws: Workspace,
    output: str | Path,
    *,
    project: str | None = None,
    records: pd.DataFrame | None = None,
    min_similarity: float = DEFAULT_MIN_SIMILARITY,
    min_cluster_size: int = DEFAULT_MIN_CLUSTER_SIZE,
    use_llm: bool = True,
) -> dict[str, Any]:
    """Flagged feedback + far records (``records``, else the review queue) -> report files.

    Similarities are searched in ``coder``'s code index with its retrieval embeddings (a
    coder without retrieval, a model alone, cannot say what is far from every code)."""
    from autocoder.index import IndexConnectionError, IndexNotBuiltError
    from autocoder.review.queue import load_feedback

    retrieval = coder.retrieval
    if retrieval is None or coder.taxonomy is None:
        raise ValueError(
            f"emerging occupations need a coder with the code index; {coder.predictor_id} "
            "has none (use --model retrieval)"
        )
    flagged = flagged_records(load_feedback(ws, project))
    scan = records if records is not None else queued_records(ws, project)
    try:
        result = find_emerging(
            flagged, scan, retrieval.embed, retrieval.index, dict(coder.labels),
            min_similarity=min_similarity, min_cluster_size=min_cluster_size,
        )  # fmt: skip
    except (IndexNotBuiltError, IndexConnectionError) as exc:
        raise ValueError(f"emerging occupations need the code index: {exc}") from exc
    taxonomy = coder.taxonomy
    result.params["llm"] = _name_with_llm(result, settings, ws, taxonomy) if use_llm else "off"
    md, csv = write_report(result, output)
    return {**result.summary(), "markdown": str(md), "csv": str(csv)}


def _name_with_llm(result: EmergingResult, settings: Settings, ws: Workspace, taxonomy: Any) -> str:
    """Name the clusters when an LLM is configured; returns what happened, for the summary."""
    from autocoder import api
    from autocoder.llm.prompts import load_prompt

    if not result.clusters:
        return "no clusters"
    try:
        model = api.llm_model(settings, ws)
    except ValueError:
        return "not configured"
    prompt = load_prompt(*PROMPT, override=settings.llm.prompts_dir)
    named = name_clusters(
        result.clusters,
        model,
        prompt,
        taxonomy_name=f"{taxonomy.name} {taxonomy.version}".strip(),
        cache=api.llm_cache(settings, ws),
    )
    return f"{prompt.id}: {named}/{len(result.clusters)} named"
