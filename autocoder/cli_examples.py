"""``autocoder examples ...``: the coded-examples store (thin layer over autocoder.examples).

Exit codes: 0 done (rows that were bad are listed, the good ones stored); 2 bad input (the file
cannot be read, a column is missing, no row was usable) or configuration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from autocoder.cli_common import echo_json as _echo
from autocoder.cli_common import fail as _fail
from autocoder.cli_common import settings_from as _settings

examples_app = typer.Typer(
    no_args_is_help=True,
    help="Coded examples (an office's coded history, review answers) that coding learns from.",
)

TaxonomyOpt = Annotated[
    str | None, typer.Option("--taxonomy", "-t", help="Taxonomy (default: taxonomy.default).")
]
#: Rejected rows printed at most (``--rejected FILE`` writes all of them).
SHOWN = 20


def _store(ctx: typer.Context, taxonomy: str | None) -> tuple[Any, Any]:
    from autocoder.examples.store import ExampleStore
    from autocoder.taxonomy.store import load_taxonomy

    settings, ws = _settings(ctx)
    name = taxonomy or settings.taxonomy.default
    try:
        tax = load_taxonomy(ws, name)
    except FileNotFoundError as exc:
        _fail(str(exc))
    return ExampleStore.of(ws, name), tax


@examples_app.command("add")
def add_cmd(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="CSV, JSONL or Parquet table of coded titles.")],
    code_column: Annotated[
        str, typer.Option("--code-column", help="Column with the code (or ESCO concept URI).")
    ],
    title_column: Annotated[str, typer.Option("--title-column")] = "title",
    description_column: Annotated[str, typer.Option("--description-column")] = "description",
    source: Annotated[
        str | None, typer.Option("--source", help="Name of this batch (default: file stem).")
    ] = None,
    weight: Annotated[
        float, typer.Option("--weight", help="Vote and training weight (> 0).")
    ] = 1.0,
    taxonomy: TaxonomyOpt = None,
    rejected: Annotated[
        Path | None, typer.Option("--rejected", help="Write every rejected row (row, reason).")
    ] = None,
) -> None:
    """Add coded examples; bad rows are reported with their reason and not stored."""
    import pandas as pd

    from autocoder.examples.ops import add_file
    from autocoder.examples.store import AddSpec
    from autocoder.io import InputError, write_table

    store, tax = _store(ctx, taxonomy)
    spec = AddSpec(code_column, title_column, description_column, source, weight)
    try:
        report = add_file(store, tax, path, spec)
    except (InputError, ValueError) as exc:
        _fail(str(exc))
    if rejected is not None:
        write_table(pd.DataFrame(report.rejected, columns=["row", "title", "reason"]), rejected)
    shown = {**report.__dict__, "rejected": report.rejected[:SHOWN]}
    shown["rejected_rows"] = len(report.rejected)
    shown["conflicting_titles"] = len(report.conflicts)
    shown["conflicts"] = report.conflicts[:SHOWN]
    _echo(shown)
    if report.rows and not report.added:
        _fail(f"no row of {path} was stored ({len(report.rejected)} rejected)")


@examples_app.command("stats")
def stats_cmd(ctx: typer.Context, taxonomy: TaxonomyOpt = None) -> None:
    """Rows, titles, codes, sources, conflicting titles and the content hash."""
    from autocoder.examples.ops import stats

    store, _ = _store(ctx, taxonomy)
    _echo(stats(store))


@examples_app.command("list")
def list_cmd(
    ctx: typer.Context,
    taxonomy: TaxonomyOpt = None,
    source: Annotated[str | None, typer.Option("--source")] = None,
    limit: Annotated[int, typer.Option("--limit", min=0, help="Rows shown (0 = all).")] = 20,
) -> None:
    """The stored examples with their provenance (JSON lines)."""
    from autocoder.examples.ops import list_examples

    store, _ = _store(ctx, taxonomy)
    df = list_examples(store, source=source, limit=limit)
    if len(df):
        typer.echo(df.to_json(orient="records", lines=True).rstrip("\n"))


@examples_app.command("remove")
def remove_cmd(
    ctx: typer.Context,
    source: Annotated[str, typer.Option("--source", help="Remove every example of this source.")],
    taxonomy: TaxonomyOpt = None,
) -> None:
    """Remove the examples of one source."""
    store, _ = _store(ctx, taxonomy)
    removed = store.remove_source(source)
    if not removed:
        _fail(f"no examples from source {source!r} in the {store.directory.name} store")
    _echo({"source": source, "removed": removed, "content_hash": store.content_hash()})


@examples_app.command("fit")
def fit_cmd(
    ctx: typer.Context,
    taxonomy: TaxonomyOpt = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="The coder to fit for, as `code` takes it "
            "(default: coder.model; `retrieval` = retrieval alone).",
        ),
    ] = None,
    rows: Annotated[int, typer.Option("--rows", min=1, help="Examples held out, at most.")] = 2000,
    share: Annotated[
        float, typer.Option("--share", min=0.01, max=0.9, help="Share of the store held out.")
    ] = 0.2,
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """Fit the vote settings and blend temperature on examples held out of the store.

    Prints the settings and cross-fitted figures (top-1, top-5, log loss, ECE of the confidence) of the
    coder alone, with the configured settings and with the fitted ones; coding then votes with
    the fitted settings for this coder (`examples.use_fit`)."""
    from autocoder import api

    settings, ws = _settings(ctx)
    try:
        result = api.fit_examples(settings, ws, model=model, taxonomy_name=taxonomy, rows=rows,
                                  share=share, seed=seed)  # fmt: skip
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    _echo(result)
