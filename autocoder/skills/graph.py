"""The skills–occupation knowledge graph (after de Groot, Schutte & Graus), with networkx.

* ``build_graph``: a bipartite graph of occupations (``occ:<code>``) and skills
  (``skill:<uri>``) from the taxonomy's essential/optional relations (weights 1.0 / 0.5);
  optional co-occurrence weights (``cooccurrence``: skills extracted from coded postings, the
  share of an occupation's postings naming the skill) add to those weights and add the
  occupation–skill edges the taxonomy lacks.
* ``link_prediction``: edges split 55/15/30 (train/validation/test); random occupation–skill
  non-edges as negatives at negative:positive ratios 1..7. Preferential attachment (networkx)
  scores a pair by the product of train-graph degrees; node2vec embeds nodes from biased random
  walks (p, q) over the train graph with gensim's Word2Vec and a logistic regression scores the
  Hadamard product of two node vectors. Thresholds (and the regression) are fitted on the
  validation edges; F1 is measured on the test edges.
* ``career_path``: occupations linked when the Jaccard distance of their skill sets is at most
  ``max_step`` (0.8); Dijkstra finds the shortest path, each step listing the skills to gain.
* ``distinctive_skills``: TF-IDF of skills per ISCO group (levels 1–4).

``career_path`` and ``distinctive_skills`` read the taxonomy's relations, or a graph's edges
(``graph=build_graph(taxonomy, cooccurrence)``) to include the co-occurrence edges.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from autocoder.extras import require
from autocoder.io import InputError, iter_table
from autocoder.skills.text import jaccard
from autocoder.taxonomy.model import Taxonomy

require("skills", "networkx", "gensim")  # first, so a missing extra names its pip install
import networkx as nx  # noqa: E402

RELATION_WEIGHTS = {"essential": 1.0, "optional": 0.5}


def occ_node(code: str) -> str:
    return f"occ:{code}"


def skill_node(uri: str) -> str:
    return f"skill:{uri}"


def build_graph(taxonomy: Taxonomy, cooccurrence: pd.DataFrame | None = None) -> nx.Graph:
    """Occupation and skill nodes (``kind``, ``label``) and their relations (``weight``,
    ``relation``).

    ``cooccurrence`` (``code, skill_uri`` and ``weight``, or ``count`` read as ``count / max
    count``; :func:`cooccurrence_weights` makes one) adds its weight to an edge, or adds the edge
    (``relation="cooccurrence"``) when the taxonomy has none; ``g.graph["cooccurrence"]`` counts
    the pairs reinforced, added and skipped (occupation or skill not in the taxonomy).
    """
    g = nx.Graph()
    for occ in taxonomy.leaves():
        g.add_node(occ_node(occ.code), kind="occupation", label=occ.title, code=occ.code)
        for link in occ.skills:
            s = skill_node(link.skill_id)
            if s not in g:
                skill = taxonomy.skills.get(link.skill_id)
                g.add_node(s, kind="skill", label=skill.label if skill else link.label)
            w = RELATION_WEIGHTS.get(link.relation, 0.5)
            old = g.get_edge_data(occ_node(occ.code), s, {})
            if w >= old.get("weight", 0):
                g.add_edge(occ_node(occ.code), s, weight=w, relation=link.relation or "optional")
    if cooccurrence is not None and len(cooccurrence):
        g.graph["cooccurrence"] = add_cooccurrence(g, taxonomy, cooccurrence)
    g.remove_nodes_from([n for n in list(g) if g.degree(n) == 0])
    return g


def add_cooccurrence(g: nx.Graph, taxonomy: Taxonomy, table: pd.DataFrame) -> dict[str, int]:
    """Add ``table``'s co-occurrence weights to ``g`` (see :func:`build_graph`)."""
    if "weight" in table.columns:
        weights = table["weight"].astype(float)
    else:
        weights = table["count"].astype(float) / float(table["count"].max())
    counts = table["count"] if "count" in table.columns else pd.Series(0, index=table.index)
    stats = {"pairs": len(table), "reinforced": 0, "added": 0, "skipped": 0}
    rows = zip(table["code"], table["skill_uri"], weights, counts, strict=True)
    for code, uri, w, count in rows:
        u, v = occ_node(str(code)), skill_node(str(uri))
        if u not in g or (v not in g and str(uri) not in taxonomy.skills):
            stats["skipped"] += 1
            continue
        if v not in g:
            g.add_node(v, kind="skill", label=taxonomy.skills[str(uri)].label)
        data = g.get_edge_data(u, v)
        if data is None:
            g.add_edge(u, v, weight=float(w), relation="cooccurrence", cooccurrence=int(count))
            stats["added"] += 1
        else:
            data["weight"] = data["weight"] + float(w)
            data["cooccurrence"] = int(count)
            stats["reinforced"] += 1
    return stats


def cooccurrence_weights(
    coded: pd.DataFrame,
    skills: pd.DataFrame,
    *,
    code_column: str = "code_1",
    id_column: str = "id",
    min_count: int = 1,
) -> pd.DataFrame:
    """``code, skill_uri, count, postings, weight`` from coded postings and their skills.

    ``coded`` is ``autocoder code`` output (``id``, ``code_column``, optional ``status``);
    ``skills`` is ``autocoder skills extract`` output (``id, skill_uri``, optional ``status``).
    ``count``: the postings coded ``code`` whose skills include ``skill_uri``; ``postings``: the
    postings coded ``code`` that have extracted skills; ``weight = count / postings`` (0–1, the
    share of the occupation's postings naming the skill). Rows with an ``error:`` status, an
    empty code or skill are left out; pairs seen fewer than ``min_count`` times too.
    """
    for table, name, cols in (
        (coded, "coded postings", (id_column, code_column)),
        (skills, "extracted skills", (id_column, "skill_uri")),
    ):
        missing = [c for c in cols if c not in table.columns]
        if missing:
            raise InputError(f"{name}: no column {missing[0]!r}; columns are {list(table.columns)}")
    codes = _usable(coded, code_column).drop_duplicates(id_column)
    codes = codes[[id_column, code_column]].rename(columns={code_column: "code"})
    found = _usable(skills, "skill_uri")[[id_column, "skill_uri"]].drop_duplicates()
    pairs = codes.merge(found, on=id_column, how="inner")
    columns = ["code", "skill_uri", "count", "postings", "weight"]
    if pairs.empty:
        return pd.DataFrame(columns=columns)
    counted = pairs.groupby(["code", "skill_uri"], sort=True)[id_column].nunique()
    postings = pairs.groupby("code")[id_column].nunique().rename("postings")
    out = counted.rename("count").reset_index().merge(postings, on="code")
    out["weight"] = out["count"] / out["postings"]
    return out[out["count"] >= min_count].reset_index(drop=True)[columns]


def _usable(table: pd.DataFrame, column: str) -> pd.DataFrame:
    """Rows with a non-empty ``column`` and no ``error:`` status."""
    keep = table[column].fillna("").astype(str).str.strip() != ""
    if "status" in table.columns:
        keep &= ~table["status"].fillna("").astype(str).str.startswith("error:")
    return table[keep]


def read_cooccurrence(
    postings: str | Path,
    skills: str | Path,
    *,
    code_column: str = "code_1",
    id_column: str = "id",
    min_count: int = 1,
    chunk_rows: int = 100_000,
) -> pd.DataFrame:
    """:func:`cooccurrence_weights` of two files, streamed (only the needed columns kept)."""

    def columns(path: str | Path, wanted: tuple[str, ...]) -> pd.DataFrame:
        parts = [
            chunk[[c for c in (*wanted, "status") if c in chunk.columns]]
            for chunk in iter_table(path, chunk_rows=chunk_rows, string_columns=wanted)
        ]
        if not parts:
            raise InputError(f"{path}: the table is empty")
        return pd.concat(parts, ignore_index=True)

    coded = columns(postings, (id_column, code_column))
    found = columns(skills, (id_column, "skill_uri"))
    try:
        return cooccurrence_weights(
            coded, found, code_column=code_column, id_column=id_column, min_count=min_count
        )
    except InputError as exc:
        path = postings if str(exc).startswith("coded") else skills
        raise InputError(f"{path}: {exc}") from None


# --- link prediction -----------------------------------------------------------------------


@dataclass
class EdgeSplit:
    train: list[tuple[str, str]]
    val: list[tuple[str, str]]
    test: list[tuple[str, str]]
    occupations: list[str] = field(default_factory=list)
    skills: list[str] = field(default_factory=list)


def split_edges(
    g: nx.Graph, fractions: tuple[float, float, float] = (0.55, 0.15, 0.30), *, seed: int = 0
) -> EdgeSplit:
    """Shuffle the occupation→skill edges and cut them train/validation/test."""
    if abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"split fractions {fractions} must sum to 1")
    edges = [(u, v) if u.startswith("occ:") else (v, u) for u, v in g.edges()]
    edges.sort()
    random.Random(seed).shuffle(edges)
    n_train = int(len(edges) * fractions[0])
    n_val = int(len(edges) * fractions[1])
    occs = sorted(n for n, d in g.nodes(data=True) if d.get("kind") == "occupation")
    skills = sorted(n for n, d in g.nodes(data=True) if d.get("kind") == "skill")
    return EdgeSplit(
        edges[:n_train], edges[n_train : n_train + n_val], edges[n_train + n_val :], occs, skills
    )


def sample_negatives(
    split: EdgeSplit, n: int, exclude: set[tuple[str, str]], rng: random.Random
) -> list[tuple[str, str]]:
    """``n`` random occupation–skill pairs that are not edges (of any split) nor excluded."""
    out: list[tuple[str, str]] = []
    seen = set(exclude)
    limit = len(split.occupations) * len(split.skills) - len(seen)
    if n > limit:
        raise ValueError(f"cannot sample {n} negatives: only {limit} non-edges exist")
    while len(out) < n:
        pair = (rng.choice(split.occupations), rng.choice(split.skills))
        if pair not in seen:
            seen.add(pair)
            out.append(pair)
    return out


def node2vec_walks(
    g: nx.Graph,
    *,
    num_walks: int = 5,
    walk_length: int = 20,
    p: float = 1.0,
    q: float = 1.0,
    seed: int = 0,
) -> list[list[str]]:
    """node2vec's second-order biased walks (return ``p``, in-out ``q``) by rejection sampling."""
    rng = random.Random(seed)
    neighbors = {n: list(g.neighbors(n)) for n in g}
    sets = {n: set(v) for n, v in neighbors.items()}
    top = max(1.0 / p, 1.0, 1.0 / q)
    nodes = sorted(g)
    walks = []
    for _ in range(num_walks):
        rng.shuffle(nodes)
        for start in nodes:
            walk = [start]
            while len(walk) < walk_length and neighbors[walk[-1]]:
                cur = walk[-1]
                if len(walk) == 1:
                    walk.append(rng.choice(neighbors[cur]))
                    continue
                prev = walk[-2]
                while True:
                    nxt = rng.choice(neighbors[cur])
                    w = 1.0 / p if nxt == prev else 1.0 if nxt in sets[prev] else 1.0 / q
                    if rng.random() * top <= w:
                        break
                walk.append(nxt)
            walks.append(walk)
    return walks


def node2vec_embeddings(
    g: nx.Graph,
    *,
    dim: int = 64,
    num_walks: int = 5,
    walk_length: int = 20,
    p: float = 1.0,
    q: float = 0.5,
    window: int = 5,
    epochs: int = 2,
    workers: int = 2,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    from gensim.models import Word2Vec

    walks = node2vec_walks(g, num_walks=num_walks, walk_length=walk_length, p=p, q=q, seed=seed)
    model = Word2Vec(
        sentences=walks,
        vector_size=dim,
        window=window,
        min_count=1,
        sg=1,
        workers=workers,
        epochs=epochs,
        seed=seed,
    )
    return {n: model.wv[n] for n in model.wv.index_to_key}


def best_f1_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The score threshold that maximises F1 (fitted on validation pairs)."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(labels, scores)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(thresholds[int(np.argmax(f1[:-1]))]) if len(thresholds) else 0.0


def _pa_scores(train: nx.Graph, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
    present = [(u, v) for u, v in pairs]
    for u, v in present:
        for n in (u, v):
            if n not in train:
                train.add_node(n)
    return np.log1p(np.array([s for _, _, s in nx.preferential_attachment(train, present)], float))


def _hadamard(emb: dict[str, np.ndarray], pairs: Sequence[tuple[str, str]], dim: int) -> np.ndarray:
    zero = np.zeros(dim, dtype=np.float32)
    return np.array([emb.get(u, zero) * emb.get(v, zero) for u, v in pairs])


def link_prediction(
    g: nx.Graph,
    *,
    ratios: Sequence[int] = (1, 2, 3, 4, 5, 6, 7),
    seed: int = 0,
    node2vec: dict[str, Any] | None = None,
) -> dict[str, dict[str, float]]:
    """F1 on the test edges per method and negative ratio: ``{"method": {"ratio": f1}}``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    split = split_edges(g, seed=seed)
    train = nx.Graph()
    train.add_nodes_from(g.nodes(data=True))
    train.add_edges_from(split.train)
    emb = node2vec_embeddings(train, seed=seed, **(node2vec or {}))
    dim = len(next(iter(emb.values())))
    all_edges = set(split.train) | set(split.val) | set(split.test)
    rng = random.Random(seed)
    out: dict[str, dict[str, float]] = {"preferential_attachment": {}, "node2vec": {}}
    for ratio in ratios:
        val_neg = sample_negatives(split, ratio * len(split.val), all_edges, rng)
        test_neg = sample_negatives(split, ratio * len(split.test), all_edges | set(val_neg), rng)
        val_pairs, test_pairs = split.val + val_neg, split.test + test_neg
        y_val = np.r_[np.ones(len(split.val)), np.zeros(len(val_neg))]
        y_test = np.r_[np.ones(len(split.test)), np.zeros(len(test_neg))]
        threshold = best_f1_threshold(_pa_scores(train, val_pairs), y_val)
        pa_pred = _pa_scores(train, test_pairs) >= threshold
        out["preferential_attachment"][str(ratio)] = round(float(f1_score(y_test, pa_pred)), 4)
        clf = LogisticRegression(max_iter=1000).fit(_hadamard(emb, val_pairs, dim), y_val)
        proba_val = clf.predict_proba(_hadamard(emb, val_pairs, dim))[:, 1]
        cut = best_f1_threshold(proba_val, y_val)
        n2v_pred = clf.predict_proba(_hadamard(emb, test_pairs, dim))[:, 1] >= cut
        out["node2vec"][str(ratio)] = round(float(f1_score(y_test, n2v_pred)), 4)
    return out


# --- career paths --------------------------------------------------------------------------


@dataclass
class PathStep:
    code: str
    title: str
    distance: float  # Jaccard distance from the previous occupation (0 for the start)
    gain: list[str]  # skills of this occupation the previous one lacks


def skill_weights(taxonomy: Taxonomy, kg: nx.Graph | None = None) -> dict[str, dict[str, float]]:
    """Per occupation code: its skills (URIs) and their weights. From the taxonomy's relations
    (each 1.0), or from the edges of ``kg`` (:func:`build_graph`: relation + co-occurrence)."""
    if kg is None:
        return {o.code: {s.skill_id: 1.0 for s in o.skills} for o in taxonomy.leaves() if o.skills}
    out: dict[str, dict[str, float]] = {}
    for node, data in kg.nodes(data=True):
        if data.get("kind") == "occupation":
            links = {
                other[len("skill:") :]: float(kg[node][other].get("weight", 1.0))
                for other in kg.neighbors(node)
            }
            if links:
                out[str(data["code"])] = links
    return out


def skill_sets(taxonomy: Taxonomy, kg: nx.Graph | None = None) -> dict[str, set[str]]:
    return {code: set(links) for code, links in skill_weights(taxonomy, kg).items()}


def occupation_graph(sets: dict[str, set[str]], *, max_step: float = 0.8) -> nx.Graph:
    """Occupations linked when the Jaccard distance of their skill sets is ≤ ``max_step``."""
    from scipy import sparse

    codes = sorted(sets)
    vocab = {s: i for i, s in enumerate(sorted({s for v in sets.values() for s in v}))}
    rows = [i for i, c in enumerate(codes) for _ in sets[c]]
    cols = [vocab[s] for c in codes for s in sets[c]]
    m = sparse.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), (len(codes), len(vocab)))
    inter = (m @ m.T).toarray()
    sizes = np.asarray(m.sum(axis=1)).ravel()
    dist = 1.0 - inter / np.maximum(sizes[:, None] + sizes[None, :] - inter, 1e-9)
    g = nx.Graph()
    g.add_nodes_from(codes)
    ii, jj = np.nonzero(np.triu(dist <= max_step, k=1))
    g.add_weighted_edges_from(
        (codes[i], codes[j], float(dist[i, j])) for i, j in zip(ii, jj, strict=True)
    )
    return g


def resolve_occupation(taxonomy: Taxonomy, query: str) -> str:
    """A code, or the occupation whose title (or alternate title) is closest to ``query``."""
    if query in taxonomy and taxonomy.is_leaf(query):
        return query
    best, best_score = "", 0.0
    needle = query.casefold()
    for occ in taxonomy.leaves():
        for title in [occ.title, *occ.alt_titles]:
            if title.casefold() == needle:
                return occ.code
            score = jaccard(query, title)
            if score > best_score:
                best, best_score = occ.code, score
    if best_score < 0.3:
        raise KeyError(f"no occupation matches {query!r}; give an ESCO code or a title")
    return best


def career_path(
    taxonomy: Taxonomy,
    source: str,
    target: str,
    *,
    max_step: float = 0.8,
    graph: nx.Graph | None = None,
    kg: nx.Graph | None = None,
) -> list[PathStep]:
    """Shortest path (sum of Jaccard distances) from ``source`` to ``target`` occupation.

    ``graph``: a ready :func:`occupation_graph`; ``kg``: skill sets from this knowledge graph's
    edges (with co-occurrence edges) instead of the taxonomy's relations."""
    sets = skill_sets(taxonomy, kg)
    a, b = resolve_occupation(taxonomy, source), resolve_occupation(taxonomy, target)
    for code in (a, b):
        if code not in sets:
            raise KeyError(f"occupation {code} has no skills; it cannot be on a career path")
    g = graph if graph is not None else occupation_graph(sets, max_step=max_step)
    try:
        nodes = nx.dijkstra_path(g, a, b, weight="weight")
    except nx.NetworkXNoPath:
        raise KeyError(
            f"no career path from {a} to {b} with steps of Jaccard distance ≤ {max_step}"
        ) from None
    labels = {sid: s.label for sid, s in taxonomy.skills.items()}
    steps = [PathStep(a, taxonomy.get(a).title, 0.0, [])]
    for prev, cur in zip(nodes, nodes[1:], strict=False):
        gain = sorted(labels.get(s, s) for s in sets[cur] - sets[prev])
        steps.append(PathStep(cur, taxonomy.get(cur).title, float(g[prev][cur]["weight"]), gain))
    return steps


# --- distinctive skills --------------------------------------------------------------------


def distinctive_skills(
    taxonomy: Taxonomy,
    *,
    levels: Sequence[int] = (1, 2, 3, 4),
    top: int = 10,
    kg: nx.Graph | None = None,
) -> pd.DataFrame:
    """Top TF-IDF skills per ISCO group: ``level, group, group_title, rank, skill_uri,
    skill_label, score`` (a group = the skills of all its occupations, as term counts; with
    ``kg``, its edges' weights, co-occurrence included, are the term counts)."""
    from scipy import sparse
    from sklearn.feature_extraction.text import TfidfTransformer

    links = skill_weights(taxonomy, kg)
    uris = sorted({u for skills in links.values() for u in skills})
    index = {u: i for i, u in enumerate(uris)}
    rows = []
    for level in levels:
        counts: dict[str, dict[int, float]] = {}
        for code, skills in links.items():
            group = taxonomy.parent(code, level)
            if group is None:
                continue
            bucket = counts.setdefault(group, {})
            for uri, weight in skills.items():
                j = index[uri]
                bucket[j] = bucket.get(j, 0.0) + weight
        groups = sorted(counts)
        data = [(r, j, v) for r, gname in enumerate(groups) for j, v in counts[gname].items()]
        if not data:
            continue
        r_idx, c_idx, vals = zip(*data, strict=True)
        m = sparse.csr_matrix((vals, (r_idx, c_idx)), shape=(len(groups), len(uris)))
        tfidf = TfidfTransformer(sublinear_tf=True).fit_transform(m).tocsr()
        for r, gname in enumerate(groups):
            row = tfidf.getrow(r)
            order = np.argsort(-row.data)[:top]
            for rank, k in enumerate(order, 1):
                uri = uris[row.indices[k]]
                skill = taxonomy.skills.get(uri)
                rows.append(
                    {
                        "level": level,
                        "group": gname,
                        "group_title": taxonomy.get(gname).title,
                        "rank": rank,
                        "skill_uri": uri,
                        "skill_label": skill.label if skill else uri,
                        "score": round(float(row.data[k]), 4),
                    }
                )
    return pd.DataFrame(rows)
