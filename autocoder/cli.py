"""The ``autocoder`` command line: a thin typer layer over the functions in ``autocoder.api``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from autocoder import api
from autocoder.cli_common import AutocoderGroup
from autocoder.cli_common import echo_json as _echo_json
from autocoder.cli_common import fail as _fail
from autocoder.cli_common import settings_from as _settings
from autocoder.cli_examples import examples_app
from autocoder.cli_paraphrase import paraphrase_cmd, paraphraser_app
from autocoder.cli_review import retrain_cmd, review_app
from autocoder.cli_serve import serve_app
from autocoder.cli_skills import skills_app
from autocoder.config import ConfigError
from autocoder.extras import require

app = typer.Typer(
    cls=AutocoderGroup,
    add_completion=False,
    no_args_is_help=True,
    help="autocoder: assign O*NET-SOC / ISCO-08 (ESCO) occupation codes to job records.",
)
taxonomy_app = typer.Typer(no_args_is_help=True, help="Import, download and inspect taxonomies.")
index_app = typer.Typer(no_args_is_help=True, help="Build and query the code index (Chroma).")
app.add_typer(taxonomy_app, name="taxonomy")
app.add_typer(index_app, name="index")
llm_app = typer.Typer(no_args_is_help=True, help="Local llama.cpp server (Gemma 3 270M from PyPI).")
app.add_typer(llm_app, name="llm-server")
app.add_typer(review_app, name="review")
app.command("retrain")(retrain_cmd)
app.add_typer(paraphraser_app, name="paraphraser")
app.command("paraphrase")(paraphrase_cmd)
app.add_typer(skills_app, name="skills")
app.add_typer(serve_app, name="serve")
app.add_typer(examples_app, name="examples")


#: Exit codes: 2 = bad usage or input (nothing was done), 1 = a fault (index unreachable or
#: locked, every record failed).
FAULT = 1


def _probability(value: float | None) -> float | None:
    """Option callback: a number in [0, 1] (NaN is refused)."""
    if value is not None and not 0.0 <= value <= 1.0:  # NaN fails both comparisons
        raise typer.BadParameter(f"{value} is not a number between 0 and 1")
    return value


@app.callback()
def main(
    ctx: typer.Context,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="User TOML config file.")
    ] = None,
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="Override a setting: section.key=value.")
    ] = None,
) -> None:
    """autocoder: assign O*NET-SOC / ISCO-08 (ESCO) occupation codes to job records."""
    ctx.obj = {"config": config, "overrides": list(overrides or [])}


# --- taxonomy -------------------------------------------------------------------------------
@taxonomy_app.command("import")
def taxonomy_import(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help="onet or esco")],
    path: Annotated[Path, typer.Argument(help="Release folder or zip.")],
    version: Annotated[str | None, typer.Option(help="Override the detected version.")] = None,
    holdout: Annotated[
        Path | None, typer.Option(help="Table with a 'title' column to hold out (dev split).")
    ] = None,
) -> None:
    """Import an official O*NET (text) or ESCO (CSV) release into the workspace."""
    _, ws = _settings(ctx)
    try:
        result = api.import_taxonomy(kind, path, ws, version=version, holdout=holdout)
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    _echo_json(result.__dict__)


@taxonomy_app.command("download")
def taxonomy_download(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help="onet or esco")],
    dest: Annotated[Path | None, typer.Option(help="Where to save the release.")] = None,
    do_import: Annotated[bool, typer.Option("--import/--no-import")] = True,
) -> None:
    """Fetch the official release from its publisher (needs internet), then import it."""
    from autocoder.taxonomy.download import DownloadError, download_release

    _, ws = _settings(ctx)
    try:
        path = download_release(kind, dest or ws.downloads)
    except (DownloadError, ValueError) as exc:
        _fail(str(exc))
    typer.echo(f"downloaded {path}")
    if do_import:
        _echo_json(api.import_taxonomy(kind, path, ws).__dict__)


@taxonomy_app.command("starter")
def taxonomy_starter(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help="Only 'onet' has an offline starter.")] = "onet",
) -> None:
    """Offline starter: O*NET 29.2 occupations and tasks from PyPI packages (no internet)."""
    from autocoder.taxonomy.starter import build_onet_starter

    if kind != "onet":
        _fail(f"no offline starter for {kind!r}: ESCO must be imported from its CSV export")
    _, ws = _settings(ctx)
    try:
        folder = build_onet_starter(ws.downloads / "onet-starter")
    except (FileNotFoundError, RuntimeError) as exc:
        _fail(str(exc))
    _echo_json(api.import_taxonomy("onet", folder, ws).__dict__)


@taxonomy_app.command("list")
def taxonomy_list(ctx: typer.Context) -> None:
    """Show the imported taxonomies."""
    from autocoder.taxonomy.store import list_taxonomies, load_taxonomy

    _, ws = _settings(ctx)
    _echo_json([load_taxonomy(ws, name).meta() for name in list_taxonomies(ws)])


@app.command("dev-split")
def dev_split(
    onet_path: Annotated[Path, typer.Argument(help="O*NET text release (folder or zip).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Dev split table to write.")],
    fraction: Annotated[float, typer.Option(help="Share of real-world titles held out.")] = 0.2,
    seed: Annotated[int, typer.Option()] = 13,
) -> None:
    """Carve a dev split (id, title, codes) from O*NET real-world titles (sources 02 and 10)."""
    from autocoder.devsplit import make_dev_split
    from autocoder.io import write_table
    from autocoder.taxonomy.onet import read_alternate_titles

    dev = make_dev_split(read_alternate_titles(onet_path), fraction=fraction, seed=seed)
    write_table(dev, output)
    typer.echo(f"wrote {len(dev)} dev titles to {output}; import with --holdout {output}")


# --- index ----------------------------------------------------------------------------------
@index_app.command("build")
def index_build(
    ctx: typer.Context,
    taxonomy: Annotated[
        str | None, typer.Option(help="Taxonomy name (default from config).")
    ] = None,
) -> None:
    """Embed every code text and (re)build the Chroma collection; idempotent."""
    from autocoder.index import IndexConnectionError
    from autocoder.workspace import LockedError

    settings, ws = _settings(ctx)
    try:
        _, n = api.build_index(settings, ws, taxonomy)
    except FileNotFoundError as exc:
        _fail(str(exc))
    except (LockedError, IndexConnectionError) as exc:
        _fail(str(exc), FAULT)
    typer.echo(f"indexed {n} documents")


@index_app.command("query")
def index_query(
    ctx: typer.Context,
    text: Annotated[str, typer.Argument(help="A job title (and duties).")],
    k: Annotated[int, typer.Option("-k")] = 5,
    taxonomy: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Show the top-k candidate codes for one text."""
    from autocoder.coding.loaded import retrieval_coder
    from autocoder.taxonomy.store import load_taxonomy

    settings, ws = _settings(ctx)
    tax = load_taxonomy(ws, taxonomy or settings.taxonomy.default)
    coder = retrieval_coder(settings, ws, tax)
    codes, probs, evidence = coder.rank([text])
    for c, p, e in zip(codes[0][:k], probs[0][:k], evidence[0][:k], strict=False):
        typer.echo(f"{c}\t{p:.3f}\t{tax.get(c).title}\t(matched: {e[:80]})")


# --- coding and evaluation -------------------------------------------------------------------
@app.command("code")
def code_cmd(
    ctx: typer.Context,
    input_path: Annotated[
        Path, typer.Argument(help="CSV, JSONL or Parquet with id, title[, description].")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output table (same formats).")],
    top_n: Annotated[
        int | None, typer.Option("--top-n", min=1, max=100, help="Codes per record (1-100).")
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option(help="Model directory, 'pretrained' (packaged) or 'retrieval' (index only)."),
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(callback=_probability, help="Review threshold on confidence (0-1)."),
    ] = None,
    target_precision: Annotated[
        float | None,
        typer.Option(
            "--target-precision",
            callback=_probability,
            help="Thresholds (detailed and partial codes) fitted to reach this precision on "
            "the model's calibration data (default: coder.target_precision).",
        ),
    ] = None,
    taxonomy: Annotated[str | None, typer.Option()] = None,
    engine: Annotated[
        str, typer.Option(help="local (checkpointed, resumable) or ray (Ray Data replicas).")
    ] = "local",
    address: Annotated[
        str | None, typer.Option(help="Ray cluster address (--engine ray); none: a local Ray.")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Model replicas on Ray (--engine ray).")] = 2,
    encoding: Annotated[
        str | None,
        typer.Option(help="Text encoding of a CSV/JSONL input (default coder.encoding, utf-8)."),
    ] = None,
    skills: Annotated[
        int,
        typer.Option(
            min=0, help="Add each record's top K ESCO skills (skills, skill_uris columns)."
        ),
    ] = 0,
) -> None:
    """Code a file of records; resumes an interrupted run of the same job.

    Exit code 2: bad options or files (nothing coded); 1: the index is missing, unreachable or
    being rebuilt, the output is in use, or every record failed (the output is still written)."""
    from autocoder.io import InputError

    if engine == "ray":
        require("ray", "ray")
    settings, ws = _settings(ctx)
    try:
        summary = api.code(
            settings,
            ws,
            input_path,
            output,
            taxonomy_name=taxonomy,
            model_dir=model,
            top_n=top_n,
            threshold=threshold,
            target_precision=target_precision,
            engine=engine,
            address=address,
            workers=workers,
            encoding=encoding,
            skills=skills,
        )
    except (InputError, ConfigError, FileNotFoundError) as exc:
        _fail(str(exc))
    except RuntimeError as exc:
        _fail(str(exc), FAULT)
    if summary.note:
        typer.secho(f"note: {summary.note}", fg=typer.colors.YELLOW, err=True)
    _echo_json(summary.to_dict())
    if summary.calibration:  # the Ray engine does not report it
        from autocoder.coding.trust import describe_thresholds

        typer.echo(describe_thresholds(summary.calibration), err=True)
    if summary.all_failed:
        _fail(f"every record failed: {summary.errors}", FAULT)


@app.command("eval")
def eval_cmd(
    ctx: typer.Context,
    gold: Annotated[Path, typer.Option(help="Table with id and codes (';'-separated).")],
    pred: Annotated[Path, typer.Option(help="The coder's output.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Report directory.")],
    taxonomy: Annotated[
        str | None, typer.Option(help="Taxonomy for level names and labels.")
    ] = None,
) -> None:
    """Top-1/3/5, MRR, macro and per-level accuracy, calibration, coverage vs precision."""
    from autocoder.evaluate import run_eval
    from autocoder.io import InputError
    from autocoder.taxonomy.store import list_taxonomies, load_taxonomy
    from autocoder.validation import ValidationError

    settings, ws = _settings(ctx)
    name = taxonomy or settings.taxonomy.default
    tax = load_taxonomy(ws, name) if name in list_taxonomies(ws) else None
    try:
        result = run_eval(
            gold,
            pred,
            output,
            taxonomy=tax,
            thresholds=settings.eval.thresholds,
            formula_guard=settings.output.csv_formula_guard,
        )
    except (ValidationError, InputError, FileNotFoundError) as exc:
        _fail(str(exc))
    _echo_json({k: v for k, v in result.metrics.items() if not isinstance(v, (dict, list))})
    typer.echo(f"report: {output / 'report.md'}")


@app.command("quickstart")
def quickstart_cmd(
    ctx: typer.Context,
    output: Annotated[Path, typer.Option("--output", "-o")] = Path("coded_example.csv"),
    onet: Annotated[Path | None, typer.Option(help="O*NET text release to import.")] = None,
    input_path: Annotated[Path | None, typer.Option("--input", help="Records to code.")] = None,
) -> None:
    """Import a taxonomy (offline starter if none), build the index and code an example file."""
    settings, ws = _settings(ctx)
    try:
        steps = api.quickstart(settings, ws, output, onet_path=onet, input_path=input_path)
    except (FileNotFoundError, RuntimeError, ValueError) as exc:
        _fail(str(exc))
    _echo_json(steps)
    done = steps["outcome"]
    bar = (
        f"target precision {done['target_precision']}"
        if done["target_precision"]
        else f"threshold {done['threshold']}"
    )
    typer.echo(
        f"workspace: {ws.root}\ncoded file: {output}\n{done['coded']} coded, "
        f"{done['partial']} partially coded, {done['review']} left for review, "
        f"{done['failed']} failed ({bar})"
    )


@app.command("train")
def train_cmd(
    ctx: typer.Context,
    output: Annotated[Path, typer.Option("--output", "-o", help="Model directory to write.")],
    recipe: Annotated[
        Path | None,
        typer.Option(
            "--recipe",
            help="Recipe TOML file or packaged recipe name (default: training/classifier.toml).",
        ),
    ] = None,
    refit: Annotated[
        bool | None,
        typer.Option(
            "--refit/--no-refit",
            help="Refit the shipped network on everything, dev titles too (default: the "
            "recipe's train.refit); --no-refit keeps the model the dev figures describe.",
        ),
    ] = None,
) -> None:
    """Train the classifier from a recipe; writes a model directory for `autocoder code --model`
    and prints its dev figures (clean and noisy held-out titles, before any refit) and the
    stored examples it trained on (rows, those left out, the store's hash)."""
    import json
    import logging

    from autocoder.classify.recipe import RecipeError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings, ws = _settings(ctx)
    try:
        out = api.train(settings, ws, output, recipe=recipe, refit=refit)
    except (RecipeError, FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    meta = json.loads((out / "config.json").read_text()).get("metadata", {})
    keys = ("dev", "dev_combined", "examples", "refit")
    shown = {"model": str(out), **{k: meta[k] for k in keys if k in meta}}
    fitted = api.refit_examples_for(settings, ws, out)
    if fitted is not None:
        shown["examples_fit"] = {k: fitted[k] for k in ("settings", "figures")}
    _echo_json(shown)


@app.command("calibrate")
def calibrate_cmd(
    ctx: typer.Context,
    files: Annotated[
        list[Path],
        typer.Argument(help="Tables (CSV/JSONL/Parquet) of real titles and their codes."),
    ],
    model: Annotated[
        str,
        typer.Option(
            "--model",
            help="Model directory, `pretrained`, or `retrieval` (calibrated in the workspace).",
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Write a calibrated copy of the model here (default: in place)."
        ),
    ] = None,
    title_column: Annotated[str, typer.Option(help="Column with the title.")] = "title",
    code_column: Annotated[
        str, typer.Option(help="Column with the acceptable code(s), several separated by ';'.")
    ] = "codes",
    with_examples: Annotated[
        bool,
        typer.Option(
            "--with-examples",
            help="Calibrate with the taxonomy's coded examples voting, as `code` codes with "
            "them (keep the calibration titles out of the store).",
        ),
    ] = False,
    taxonomy: Annotated[
        str | None,
        typer.Option("--taxonomy", help="Taxonomy retrieval codes (default taxonomy.default)."),
    ] = None,
) -> None:
    """Fit MODEL's calibration (calibrated confidence, --target-precision, partial codes) on
    labeled real titles it did not train on; prints the thresholds at 0.95 and 0.9. With
    `--model retrieval` the retrieval coder alone is calibrated, for the current index and
    settings (a rebuilt index needs calibrating again)."""
    from autocoder.index import IndexConnectionError, IndexNotBuiltError
    from autocoder.io import InputError

    settings, ws = _settings(ctx)
    try:
        result = api.calibrate(
            settings, ws, model, files, output=output, title_column=title_column,
            code_column=code_column, with_examples=with_examples, taxonomy_name=taxonomy,
            show_progress=True,
        )  # fmt: skip
    except (InputError, FileNotFoundError, ValueError, IndexNotBuiltError) as exc:
        _fail(str(exc))
    except IndexConnectionError as exc:
        _fail(str(exc), code=1)
    _echo_json(result)


# --- LLM: RAG labeler, synthetic data, local server ------------------------------------------
@app.command("label")
def label_cmd(
    ctx: typer.Context,
    input_path: Annotated[
        Path, typer.Argument(help="Records with id, title[, description], label.")
    ],
    output: Annotated[Path, typer.Option("--output", "-o")],
    label_column: Annotated[str, typer.Option(help="Column with the given (noisy) code.")] = "code",
    k: Annotated[
        int, typer.Option("-k", min=1, max=50, help="Candidates retrieved and offered to the LLM.")
    ] = 5,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Label only the first N records.")
    ] = None,
    suspect_threshold: Annotated[
        float,
        typer.Option(callback=_probability, help="Flag labels the LLM scores below this (0-1)."),
    ] = 0.5,
) -> None:
    """RAG labeler: the LLM picks one of the top-k retrieved codes for each record."""
    settings, ws = _settings(ctx)
    try:
        summary = api.label(
            settings,
            ws,
            input_path,
            output,
            label_column=label_column,
            k=k,
            limit=limit,
            suspect_threshold=suspect_threshold,
        )
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    except RuntimeError as exc:
        _fail(str(exc), FAULT)
    _echo_json(summary)
    if summary["rows"] and summary["failed"] == summary["rows"]:
        _fail(f"every record failed: {summary['errors']}", FAULT)


@app.command("synth")
def synth_cmd(
    ctx: typer.Context,
    output: Annotated[Path, typer.Option("--output", "-o")],
    min_per_code: Annotated[
        int, typer.Option("--min-per-code", help="Codes with fewer examples get synthetic ones.")
    ],
    training_data: Annotated[
        Path | None, typer.Option(help="Training table (code, title/duties) to count.")
    ] = None,
    code: Annotated[list[str] | None, typer.Option("--code", help="Only these codes.")] = None,
    max_codes: Annotated[int | None, typer.Option(help="At most this many codes.")] = None,
    n_per_code: Annotated[int, typer.Option(help="Titles and duties asked for per code.")] = 30,
    k: Annotated[
        int, typer.Option("-k", help="A synthetic record is kept if its code is in its top-k.")
    ] = 5,
) -> None:
    """Generate synthetic job titles and duties for rare codes with the LLM (prompt synth.v1)."""
    settings, ws = _settings(ctx)
    try:
        summary = api.synth(
            settings,
            ws,
            output,
            min_per_code=min_per_code,
            training_data=training_data,
            codes=code or None,
            max_codes=max_codes,
            n_per_code=n_per_code,
            k=k,
        )
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        _fail(str(exc))
    _echo_json(summary)


@llm_app.command("start")
def llm_start(
    ctx: typer.Context,
    port: Annotated[int, typer.Option()] = 8001,
    threads: Annotated[int, typer.Option()] = 1,
    model: Annotated[
        Path | None, typer.Option(help="A GGUF file; default: Gemma 3 270M from PyPI.")
    ] = None,
    timeout: Annotated[float, typer.Option()] = 180.0,
) -> None:
    """Start the local llama.cpp OpenAI-compatible server (offline use, tests).

    Its Python is llm.server_python (else $AUTOCODER_LLAMA_PYTHON): scripts/setup-llm.sh."""
    from autocoder.llm.server import start_server

    settings, ws = _settings(ctx)
    try:
        info = start_server(
            ws.root / "llm-server",
            model_path=model,
            models_dir=settings.llm.server_models_dir or ws.models / "gguf",
            port=port,
            n_threads=threads,
            python=settings.llm.server_python,
            timeout=timeout,
        )
    except (RuntimeError, FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    _echo_json(info.to_dict())


@llm_app.command("stop")
def llm_stop(ctx: typer.Context) -> None:
    """Stop the local llama.cpp server."""
    from autocoder.llm.server import stop_server

    _, ws = _settings(ctx)
    typer.echo("stopped" if stop_server(ws.root / "llm-server") else "no server was running")


@llm_app.command("status")
def llm_status(ctx: typer.Context) -> None:
    """Show the local llama.cpp server state; exit code 3 when it is not ready."""
    from autocoder.llm.server import server_status

    _, ws = _settings(ctx)
    status = server_status(ws.root / "llm-server")
    _echo_json(status)
    if not status.get("ready"):
        raise typer.Exit(3)


@app.command("config")
def config_cmd(ctx: typer.Context) -> None:
    """Print the effective configuration (secrets are shown as **********, URL passwords
    as ***)."""
    from autocoder.redact import redact_values

    settings, ws = _settings(ctx)
    _echo_json(redact_values({"workspace": str(ws.root), **settings.model_dump(mode="json")}))


if __name__ == "__main__":  # pragma: no cover
    app()
