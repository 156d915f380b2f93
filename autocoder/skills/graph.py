"""The skills–occupation knowledge graph (after de Groot, Schutte & Graus), with networkx.

* ``build_graph``: a bipartite graph of occupations (``occ:<code>``) and skills
  (``skill:<uri>``) from the taxonomy's essential/optional relations (weights 1.0 / 0.5);
  optional co-occurrence counts (skills extracted from coded postings) add to the weights.
* ``link_prediction``: edges split 55/15/30 (train/validation/test); random occupation–skill
  non-edges as negatives at negative:positive ratios 1..7. Preferential attachment (networkx)
  scores a pair by the product of train-graph degrees; node2vec embeds nodes from biased random
  walks (p, q) over the train graph with gensim's Word2Vec and a logistic regression scores the
  Hadamard product of two node vectors. Thresholds (and the regression) are fitted on the
  validation edges; F1 is measured on the test edges.
* ``career_path``: occupations linked when the Jaccard distance of their skill sets is at most
  ``max_step`` (0.8); Dijkstra finds the shortest path, each step listing the skills to gain.
* ``distinctive_skills``: TF-IDF of skills per ISCO group (levels 1–4).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd

from autocoder.skills.text import jaccard
from autocoder.taxonomy.model import Taxonomy

RELATION_WEIGHTS = {"essential": 1.0, "optional": 0.5}


def occ_node(code: str) -> str:
    return f"occ:{code}"


def skill_node(uri: str) -> str:
    return f"skill:{uri}"


def build_graph(taxonomy: Taxonomy, cooccurrence: pd.DataFrame | None = None) -> nx.Graph:
    """Occupation and skill nodes (``kind``, ``label``) and their relations (``weight``).

    ``cooccurrence`` (``code, skill_uri, count``) adds ``count / max count`` to edge weights.
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
            g.add_edge(
                occ_node(occ.code),
                s,
                weight=max(w, g.get_edge_data(occ_node(occ.code), s, {}).get("weight", 0)),
            )
    if cooccurrence is not None and len(cooccurrence):
        top = float(cooccurrence["count"].max())
        for row in cooccurrence[["code", "skill_uri", "count"]].itertuples(index=False):
            u, v = occ_node(str(row[0])), skill_node(str(row[1]))
            if u in g and v in g:
                old = g.get_edge_data(u, v, {}).get("weight", 0.0)
                g.add_edge(u, v, weight=old + float(row[2]) / top)
    g.remove_nodes_from([n for n in list(g) if g.degree(n) == 0])
    return g


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


def skill_sets(taxonomy: Taxonomy) -> dict[str, set[str]]:
    return {o.code: {s.skill_id for s in o.skills} for o in taxonomy.leaves() if o.skills}


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
    if query in taxonomy and taxonomy.get(query).level >= taxonomy.leaf_level:
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
) -> list[PathStep]:
    """Shortest path (sum of Jaccard distances) from ``source`` to ``target`` occupation."""
    sets = skill_sets(taxonomy)
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
    taxonomy: Taxonomy, *, levels: Sequence[int] = (1, 2, 3, 4), top: int = 10
) -> pd.DataFrame:
    """Top TF-IDF skills per ISCO group: ``level, group, group_title, rank, skill_uri,
    skill_label, score`` (a group = the skills of all its occupations, as term counts)."""
    from scipy import sparse
    from sklearn.feature_extraction.text import TfidfTransformer

    uris = sorted({s.skill_id for o in taxonomy.leaves() for s in o.skills})
    index = {u: i for i, u in enumerate(uris)}
    rows = []
    for level in levels:
        counts: dict[str, dict[int, float]] = {}
        for occ in taxonomy.leaves():
            group = taxonomy.parent(occ.code, level)
            if group is None:
                continue
            bucket = counts.setdefault(group, {})
            for link in occ.skills:
                j = index[link.skill_id]
                bucket[j] = bucket.get(j, 0.0) + 1.0
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
