"""The examples as part of a loaded coder: the configured example index, and a predictor
wrapped so the taxonomy's coded examples vote (``[examples]`` settings).

The wrapped predictor's id names the store's content hash and the vote settings, so a coding
job resumed after ``examples add``/``remove`` or ``review pull`` is a new job (its key
changes) instead of one that mixes output from before and after.
"""

from __future__ import annotations

from typing import Any

from autocoder.config import Settings
from autocoder.embed import Embedder
from autocoder.examples.index import ChromaExampleIndex, MemoryExampleIndex
from autocoder.examples.store import ExampleStore
from autocoder.examples.vote import ExampleIndex, ExampleVoter, WithExamples
from autocoder.taxonomy.model import Taxonomy
from autocoder.workspace import Workspace


def make_example_index(
    settings: Settings, ws: Workspace, taxonomy: Taxonomy, embedder: Embedder
) -> ExampleIndex:
    """The examples' index beside the code texts: same backend, store or server."""
    cfg, index = settings.examples, settings.index
    if index.backend == "memory":
        return MemoryExampleIndex(candidates=cfg.candidates)
    return ChromaExampleIndex(
        taxonomy_name=taxonomy.name,
        model_id=embedder.model_id,
        path=None if index.host else ws.chroma,
        host=index.host,
        port=index.port,
        prefix=index.collection_prefix,
        candidates=cfg.candidates,
        hnsw={
            "construction_ef": index.hnsw_construction_ef,
            "search_ef": index.hnsw_search_ef,
            "M": index.hnsw_m,
        },
    )


def examples_tag(settings: Settings, store: ExampleStore) -> str:
    """What the examples add to a predictor id: store hash and vote settings ("" = none)."""
    content = store.content_hash()
    if not settings.examples.enabled or not content:
        return ""
    cfg = settings.examples
    params = (cfg.neighbours, cfg.temperature, cfg.exact_weight, cfg.min_similarity, cfg.weight,
              cfg.exact_trust)  # fmt: skip
    return f"+examples:{content}:{':'.join(str(v) for v in params)}"


def with_examples(
    settings: Settings,
    ws: Workspace,
    taxonomy: Taxonomy,
    predictor: Any,
    predictor_id: str,
    embedder: Embedder,
) -> tuple[Any, str]:
    """``predictor`` with the taxonomy's coded examples voting, and its id; unchanged when
    examples are off or there are none."""
    store = ExampleStore.of(ws, taxonomy.name)
    tag = examples_tag(settings, store)
    if not tag:
        return predictor, predictor_id
    cfg = settings.examples
    voter = ExampleVoter(
        make_example_index(settings, ws, taxonomy, embedder),
        embedder,
        classes=[str(c) for c in predictor.classes_],
        neighbours=cfg.neighbours,
        temperature=cfg.temperature,
        exact_weight=cfg.exact_weight,
        min_similarity=cfg.min_similarity,
    ).fit(store.table(), store.content_hash())
    model = WithExamples(predictor, voter, weight=cfg.weight, exact_trust=cfg.exact_trust).fit()
    return model, predictor_id + tag
