"""``autocoder skills …``: extraction, SkillRank, the skills–occupation graph (thin typer layer)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from autocoder.cli_common import echo_json as _echo
from autocoder.cli_common import fail as _fail
from autocoder.cli_common import settings_from as _settings
from autocoder.workspace import Workspace

skills_app = typer.Typer(
    no_args_is_help=True,
    help="Skills: extract ESCO skills from postings, SkillRank, occupation–skill graph.",
)

PostingsOpt = Annotated[
    Path | None,
    typer.Option(
        "--postings", help="Coded postings (`autocoder code` output) for co-occurrence weights."
    ),
]
SkillsOpt = Annotated[
    Path | None,
    typer.Option("--skills", help="Their skills (`autocoder skills extract` output)."),
]
CodeColumnOpt = Annotated[
    str, typer.Option(help="Column of --postings with the ESCO occupation code.")
]
MinCountOpt = Annotated[
    int, typer.Option(min=1, help="Co-occurrences below this many postings are left out.")
]
OnetOpt = Annotated[
    Path | None, typer.Option("--onet", help="O*NET release folder for the matcher's pairs.")
]
SkillSpanOpt = Annotated[
    Path | None, typer.Option("--skillspan", help="SkillSpan train.json for the matcher's pairs.")
]
ExcludeOpt = Annotated[
    list[Path] | None,
    typer.Option("--exclude-sentences", help="Annotation CSVs whose sentences never train."),
]


def _recipe(
    recipe: Path | None,
    onet: Path | None,
    skillspan: Path | None,
    exclude: list[Path] | None,
    settings: Any,
) -> Any:
    """The matcher recipe (its data under ``skills.data_dir``), with the data paths given on
    the command line instead where given."""
    from autocoder.skills.matcher import MatcherRecipeError, load_recipe, with_data

    try:
        base = load_recipe(recipe, data_dir=settings.skills.data_dir)
        return with_data(base, onet=onet, skillspan=skillspan, exclude=exclude or [])
    except MatcherRecipeError as exc:
        _fail(str(exc))


def _graph(
    tax: Any, postings: Path | None, skills: Path | None, code_column: str, min_count: int
) -> Any:
    """The knowledge graph, with co-occurrence weights when --postings and --skills are given
    (None when neither is: the taxonomy's relations are used as they are)."""
    from autocoder.io import InputError
    from autocoder.skills.graph import build_graph, read_cooccurrence

    if postings is None and skills is None:
        return None
    if postings is None or skills is None:
        _fail("--postings and --skills go together (coded postings and their extracted skills)")
    try:
        table = read_cooccurrence(postings, skills, code_column=code_column, min_count=min_count)
    except InputError as exc:
        _fail(str(exc))
    if table.empty:
        _fail(
            f"no record of {postings} has both a code in {code_column!r} and skills in {skills} "
            f"(seen in at least {min_count} postings); do their ids match?"
        )
    g = build_graph(tax, table)
    stats = g.graph["cooccurrence"]
    if not stats["reinforced"] + stats["added"]:
        _fail(
            f"none of the {stats['pairs']} co-occurrences joins an occupation and a skill of the "
            f"ESCO taxonomy: are the codes in {code_column!r} ESCO occupation codes?"
        )
    typer.echo(
        f"co-occurrence: {stats['pairs']} occupation–skill pairs from {postings.name}: "
        f"{stats['reinforced']} edges reinforced, {stats['added']} added, "
        f"{stats['skipped']} skipped (code or skill not in the ESCO taxonomy)",
        err=True,
    )
    return g


def _taxonomy(ws: Workspace) -> Any:
    from autocoder.skills.service import esco_taxonomy

    try:
        return esco_taxonomy(ws)
    except FileNotFoundError as exc:
        _fail(str(exc))


@skills_app.command("extract")
def extract_cmd(
    ctx: typer.Context,
    input_path: Annotated[Path, typer.Argument(help="CSV, JSONL or Parquet with id and text.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="One row per (record, skill).")],
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="Skills per record.")] = 10,
    text_column: Annotated[str, typer.Option(help="Column with the posting text.")] = "text",
    id_column: Annotated[str, typer.Option(help="Column with the record id.")] = "id",
    recipe: Annotated[Path | None, typer.Option(help="Skill-matcher recipe TOML.")] = None,
    plain: Annotated[bool, typer.Option(help="Plain MiniLM, no trained matcher.")] = False,
    use_llm: Annotated[
        bool, typer.Option("--llm/--no-llm", help="LLM re-ranking if configured.")
    ] = True,
    onet: OnetOpt = None,
    skillspan: SkillSpanOpt = None,
    exclude_sentences: ExcludeOpt = None,
) -> None:
    """Rank ESCO skills for every record; trains the matcher on first use; resumable."""
    from autocoder.io import InputError
    from autocoder.skills.batch import extract_file
    from autocoder.skills.matcher import MatcherRecipeError
    from autocoder.skills.service import make_extractor, with_llm

    settings, ws = _settings(ctx)
    tax = _taxonomy(ws)
    try:
        chosen = None if plain else _recipe(recipe, onet, skillspan, exclude_sentences, settings)
        extractor, ident = make_extractor(
            ws, recipe=chosen, plain=plain, top_k=top_k, taxonomy=tax,
            data_dir=settings.skills.data_dir,
        )  # fmt: skip
        ranker, llm_id = with_llm(extractor, settings, ws) if use_llm else (extractor, "")
        summary = extract_file(
            input_path,
            output,
            extractor=ranker,
            runs_dir=ws.runs,
            extractor_id=ident + llm_id,
            top_k=top_k,
            id_column=id_column,
            text_column=text_column,
        )
    except (InputError, MatcherRecipeError, FileNotFoundError, RuntimeError, ValueError) as exc:
        _fail(str(exc))
    _echo(summary.to_dict())


@skills_app.command("train-matcher")
def train_matcher_cmd(
    ctx: typer.Context,
    recipe: Annotated[Path | None, typer.Option(help="Skill-matcher recipe TOML.")] = None,
    onet: OnetOpt = None,
    skillspan: SkillSpanOpt = None,
    exclude_sentences: ExcludeOpt = None,
) -> None:
    """Train (or find cached) the skill matcher for the workspace's ESCO skills."""
    from autocoder.skills.data import SkillCatalog
    from autocoder.skills.matcher import MatcherRecipeError, load_or_train

    settings, ws = _settings(ctx)
    catalog = SkillCatalog.from_taxonomy(_taxonomy(ws))
    chosen = _recipe(recipe, onet, skillspan, exclude_sentences, settings)
    try:
        path = load_or_train(ws.models, catalog, chosen, cache_dir=ws.embedding_cache)
    except (MatcherRecipeError, FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    _echo({"matcher": str(path)})


@skills_app.command("train")
def train_cmd(
    ctx: typer.Context,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Model dir.")] = None,
) -> None:
    """Train SkillRank (φ: job title → skills) from ESCO occupation–skill relations."""
    from autocoder.skills.skillrank import train_skillrank

    _, ws = _settings(ctx)
    target = output or ws.models / "skillrank"
    try:
        report = train_skillrank(_taxonomy(ws), target, show_progress=True)
    except ValueError as exc:
        _fail(str(exc))
    _echo({"model": str(target), **report})


@skills_app.command("rank")
def rank_cmd(
    ctx: typer.Context,
    occupation: Annotated[str, typer.Argument(help="An ESCO occupation code or a job title.")],
    top: Annotated[int, typer.Option("--top", min=1)] = 10,
    model: Annotated[Path | None, typer.Option(help="SkillRank model dir.")] = None,
) -> None:
    """Top skills SkillRank gives an occupation (a code is replaced by its title)."""
    from autocoder.skills.graph import resolve_occupation
    from autocoder.skills.skillrank import SkillRank, top_skills

    _, ws = _settings(ctx)
    tax = _taxonomy(ws)
    try:
        est, labels = SkillRank.load(model or ws.models / "skillrank")
        code = resolve_occupation(tax, occupation)
    except (FileNotFoundError, KeyError) as exc:
        _fail(str(exc).strip("'\""))
    title = occupation if occupation not in tax else tax.get(code).title
    typer.echo(f"{code}\t{tax.get(code).title}  (input: {title})")
    for uri, label, p in top_skills(est, labels, title, top):
        typer.echo(f"{p:.4f}\t{label}\t{uri}")


@skills_app.command("linkpred")
def linkpred_cmd(
    ctx: typer.Context,
    report: Annotated[Path, typer.Option("--report", help="JSON file to write.")],
    seed: Annotated[int, typer.Option()] = 0,
    max_ratio: Annotated[int, typer.Option(min=1, help="Negative ratios 1..N.")] = 7,
    postings: PostingsOpt = None,
    skills: SkillsOpt = None,
    code_column: CodeColumnOpt = "code_1",
    min_count: MinCountOpt = 1,
) -> None:
    """Link prediction (preferential attachment, node2vec): F1 per negative ratio 1..7."""
    from autocoder.skills.graph import build_graph, link_prediction

    _, ws = _settings(ctx)
    tax = _taxonomy(ws)
    g = _graph(tax, postings, skills, code_column, min_count)
    try:
        result = link_prediction(
            g if g is not None else build_graph(tax), ratios=range(1, max_ratio + 1), seed=seed
        )
    except ValueError as exc:
        _fail(str(exc))
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps(result, indent=2))
    _echo(result)


@skills_app.command("paths")
def paths_cmd(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="From: ESCO occupation code or title.")],
    target: Annotated[str, typer.Argument(help="To: ESCO occupation code or title.")],
    max_step: Annotated[float, typer.Option(help="Largest Jaccard distance per step.")] = 0.8,
    show: Annotated[int, typer.Option(help="Skills to gain shown per step.")] = 8,
    postings: PostingsOpt = None,
    skills: SkillsOpt = None,
    code_column: CodeColumnOpt = "code_1",
    min_count: MinCountOpt = 1,
) -> None:
    """Career path: Dijkstra over occupations linked by skill-set Jaccard distance."""
    from autocoder.skills.graph import career_path

    _, ws = _settings(ctx)
    tax = _taxonomy(ws)
    kg = _graph(tax, postings, skills, code_column, min_count)
    try:
        steps = career_path(tax, source, target, max_step=max_step, kg=kg)
    except KeyError as exc:
        _fail(str(exc).strip("'\""))
    for i, step in enumerate(steps):
        typer.echo(f"{i}. {step.code} {step.title}  (distance {step.distance:.3f})")
        if step.gain:
            more = f" … +{len(step.gain) - show}" if len(step.gain) > show else ""
            typer.echo(f"   gain: {'; '.join(step.gain[:show])}{more}")
    typer.echo(f"total distance {sum(s.distance for s in steps):.3f}")


@skills_app.command("distinctive")
def distinctive_cmd(
    ctx: typer.Context,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Table to write.")] = None,
    level: Annotated[list[int] | None, typer.Option("--level", help="ISCO levels 1-4.")] = None,
    top: Annotated[int, typer.Option("--top", min=1)] = 10,
    group: Annotated[str | None, typer.Option(help="Print only this ISCO group.")] = None,
    postings: PostingsOpt = None,
    skills: SkillsOpt = None,
    code_column: CodeColumnOpt = "code_1",
    min_count: MinCountOpt = 1,
) -> None:
    """Distinctive skills per ISCO group by TF-IDF."""
    from autocoder.io import write_table
    from autocoder.skills.graph import distinctive_skills

    _, ws = _settings(ctx)
    levels = level or [1, 2, 3, 4]
    if any(lv not in (1, 2, 3, 4) for lv in levels):
        _fail(f"--level must be 1-4, not {levels}")
    tax = _taxonomy(ws)
    kg = _graph(tax, postings, skills, code_column, min_count)
    table = distinctive_skills(tax, levels=levels, top=top, kg=kg)
    if output is not None:
        write_table(table, output)
        typer.echo(f"wrote {len(table)} rows to {output}")
    shown = table[table["group"] == group] if group else table[table["level"] == min(levels)]
    for (lv, g, title), part in shown.groupby(["level", "group", "group_title"], sort=True):
        typer.echo(f"[{lv}] {g} {title}: " + "; ".join(part["skill_label"].tolist()))
