"""``autocoder review ...``: the review queue on Label Studio (thin layer over autocoder.review).

Exit codes: 0 done; 1 Label Studio unreachable (nothing lost: queued work stays pending, run the
command again later); 2 bad input, configuration or a request Label Studio refused.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from autocoder.cli_common import echo_json as _echo
from autocoder.cli_common import fail as _fail
from autocoder.cli_common import settings_from as _settings

review_app = typer.Typer(
    no_args_is_help=True,
    help="Review queue on Label Studio: push uncertain records, pull the answers.",
)
server_app = typer.Typer(no_args_is_help=True, help="A local Label Studio (headless, loopback).")
review_app.add_typer(server_app, name="server")

ProjectOpt = Annotated[str, typer.Option("--project", "-p", help="Review project name.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _run(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call ``fn``; map failures to exit codes (1 = server unreachable, 2 = anything else)."""
    from autocoder.io import InputError
    from autocoder.review.labelstudio import ReviewError, ReviewUnavailable
    from autocoder.review.server import ServerError

    try:
        return fn(*args, **kwargs)
    except ReviewUnavailable as exc:
        _fail(str(exc), code=1)
    except (ReviewError, ServerError, InputError, ValueError, FileNotFoundError) as exc:
        _fail(str(exc))


# --- server -------------------------------------------------------------------------------------
@server_app.command("start")
def server_start(
    ctx: typer.Context,
    port: Annotated[int | None, typer.Option(help="Port on 127.0.0.1 (review.port).")] = None,
) -> None:
    """Start Label Studio for this workspace (idempotent: says so when it already runs)."""
    from autocoder.review.server import start_server

    settings, ws = _settings(ctx, [f"review.port={port}"] if port else None)
    info, started = _run(start_server, ws, settings.review)
    state = "started" if started else "already running"
    typer.echo(f"Label Studio {state} at {info.url} (pid {info.pid}); login {info.username}")
    typer.echo(f"token and password: {ws.root / 'review' / 'server'} (owner-only files)")


@server_app.command("stop")
def server_stop(ctx: typer.Context) -> None:
    """Stop this workspace's Label Studio."""
    from autocoder.review.server import stop_server

    _, ws = _settings(ctx)
    typer.echo("stopped" if _run(stop_server, ws) else "not running")


@server_app.command("status")
def server_status_cmd(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Whether this workspace's Label Studio runs and answers."""
    from autocoder.review.server import server_status

    _, ws = _settings(ctx)
    status = _run(server_status, ws)
    if as_json:
        _echo(status)
    elif status["running"]:
        ready = "ready" if status["ready"] else "starting (not answering yet)"
        typer.echo(f"running at {status['url']} (pid {status['pid']}), {ready}")
    else:
        typer.echo("not running")
    if not status["running"]:
        raise typer.Exit(3)


# --- queue --------------------------------------------------------------------------------------
@review_app.command("push")
def push_cmd(
    ctx: typer.Context,
    project: ProjectOpt,
    input_path: Annotated[
        Path | None, typer.Argument(help="Records (id, title, description); omit to send pending.")
    ] = None,
    model: Annotated[
        Path | None, typer.Option("--model", help="Trained model dir; default coder.model.")
    ] = None,
    strategy: Annotated[
        str,
        typer.Option(
            help="least_confidence, margin, entropy, conformal, diversity, "
            "class_balanced, per_answer (distinct titles by frequency x "
            "uncertainty), random, or 'a+b'."
        ),
    ] = "least_confidence",
    limit: Annotated[int, typer.Option(help="How many records to choose.")] = 100,
    taxonomy: Annotated[str | None, typer.Option(help="Taxonomy (first push only).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of random choices.")] = 0,
) -> None:
    """Code INPUT, queue the LIMIT records the strategy picks, send everything pending."""
    from autocoder.review.push import push

    settings, ws = _settings(ctx)
    result = _run(
        push, settings, ws, input_path, project=project, model_dir=model,
        strategy=strategy, limit=limit, taxonomy_name=taxonomy, seed=seed,
    )  # fmt: skip
    _echo({**asdict(result), "settled_per_answer": round(result.settled_per_answer, 2)})


@review_app.command("pull")
def pull_cmd(ctx: typer.Context, project: ProjectOpt) -> None:
    """Store the project's completed annotations in the feedback store (idempotent)."""
    from autocoder.review.pull import pull

    settings, ws = _settings(ctx)
    _echo(_run(pull, settings, ws, project=project))


@review_app.command("status")
def status_cmd(
    ctx: typer.Context,
    project: Annotated[str | None, typer.Option("--project", "-p")] = None,
    as_json: JsonOpt = False,
    offline: Annotated[bool, typer.Option("--offline", help="Do not ask the server.")] = False,
) -> None:
    """Counts per project: pushed, annotated, pulled, pending; inter-annotator agreement."""
    from autocoder.review.pull import review_status

    settings, ws = _settings(ctx)
    status = _run(review_status, settings, ws, project, live=not offline)
    if as_json:
        _echo(status)
        return
    typer.echo(f"server: {status['server']}")
    if not status["projects"]:
        typer.echo("no review projects yet")
    for name, e in status["projects"].items():
        on_server = e.get("annotated_on_server")
        extra = f" (on server: {on_server})" if on_server is not None else ""
        typer.echo(
            f"{name}: pushed {e['pushed']}, annotated {e['annotated']}{extra}, "
            f"pulled {e['pulled']}, pending {e['pending']}"
        )
        ag = e["agreement"]
        if ag["multi_annotated"]:
            kappa = "n/a" if ag["fleiss_kappa"] is None else f"{ag['fleiss_kappa']:.3f}"
            typer.echo(
                f"  agreement on {ag['multi_annotated']} multiply-annotated records: "
                f"{ag['identical']:.1%} identical, Fleiss' kappa {kappa}"
            )


@review_app.command("simulate")
def simulate_cmd(
    ctx: typer.Context,
    project: ProjectOpt,
    gold: Annotated[Path, typer.Option("--gold", help="Coded records (id + gold column).")],
    gold_column: Annotated[str, typer.Option(help="';'-separated codes; first is used.")] = "codes",
    annotator: Annotated[
        str | None, typer.Option(help="Answer as this user (email; created if missing).")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Answer at most this many tasks.")] = None,
) -> None:
    """Answer the project's open tasks whose records are in GOLD, like a person would."""
    from autocoder.review.simulate import simulate

    settings, ws = _settings(ctx)
    _echo(
        _run(
            simulate,
            settings,
            ws,
            project=project,
            gold_path=gold,
            gold_column=gold_column,
            annotator=annotator,
            limit=limit,
        )  # fmt: skip
    )


# --- emerging occupations and retraining (autocoder.review.emerging / .retrain) -----------------
@review_app.command("emerging")
def emerging_cmd(
    ctx: typer.Context,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="REPORT.md (+ REPORT.csv), or a directory.")
    ],
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="Only this project.")
    ] = None,
    input_path: Annotated[
        Path | None,
        typer.Option("--input", help="Records to scan for far-from-every-code (default: queue)."),
    ] = None,
    min_similarity: Annotated[
        float, typer.Option(help="A record whose best code similarity is below this is 'far'.")
    ] = 0.5,
    min_cluster_size: Annotated[int, typer.Option(help="HDBSCAN min_cluster_size.")] = 5,
    llm: Annotated[bool, typer.Option("--llm/--no-llm", help="Name clusters with the LLM.")] = True,
) -> None:
    """Cluster records flagged as new occupations, or far from every code; Markdown + CSV."""
    from autocoder.coding.loaded import RETRIEVAL, load_coder
    from autocoder.review.emerging import emerging_report
    from autocoder.review.push import read_records

    settings, ws = _settings(ctx)
    records = _run(read_records, input_path, settings) if input_path is not None else None
    coder = _run(load_coder, settings, ws, model=RETRIEVAL)
    _echo(
        _run(
            emerging_report,
            coder,
            settings,
            ws,
            output,
            project=project,
            records=records,
            min_similarity=min_similarity,
            min_cluster_size=min_cluster_size,
            use_llm=llm,
        )  # fmt: skip
    )


def retrain_cmd(
    ctx: typer.Context,
    model: Annotated[Path, typer.Option("--model", help="Model directory to start from.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="New model directory.")],
    feedback_weight: Annotated[
        float, typer.Option(help="Weight of a reviewed record (a taxonomy text weighs 1).")
    ] = 5.0,
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="Only this project's feedback.")
    ] = None,
    epochs: Annotated[int, typer.Option(help="Epochs of warm-started training.")] = 10,
    lr: Annotated[
        float | None,
        typer.Option(help="Learning rate (default: a quarter of the model's own)."),
    ] = None,
    dev: Annotated[
        Path | None, typer.Option(help="Dev table (title, codes); default: the model's holdout.")
    ] = None,
    examples: Annotated[
        bool | None,
        typer.Option(
            "--examples/--no-examples",
            help="Train on the stored coded examples too (default: the model's recipe, "
            "data.examples).",
        ),
    ] = None,
    calibrate: Annotated[
        list[Path] | None,
        typer.Option(
            "--calibrate",
            help="Table of labeled real titles (title, codes) to fit the new model's "
            "calibration on, as `autocoder calibrate` does; repeatable.",
        ),
    ] = None,
) -> None:
    """Retrain MODEL warm on all pulled feedback and the stored examples; print dev
    top-1/top-5/ECE before and after."""
    from autocoder.review.queue import load_feedback
    from autocoder.review.retrain import retrain

    settings, ws = _settings(ctx)
    from autocoder import api

    if calibrate:  # fail before a long retrain, not after it
        _run(api.check_calibration_tables, ws, model, calibrate, settings)
    result = _run(
        retrain, model, output, load_feedback(ws, project), workspace=ws, settings=settings,
        feedback_weight=feedback_weight, epochs=epochs, lr=lr, dev=dev, use_examples=examples,
        cache_dir=ws.embedding_cache if settings.embedder.cache else None,
    )  # fmt: skip
    b, a = result.before, result.after
    typer.echo(
        f"dev ({result.dev_source}, {b['n']} titles): top-1 {b['top1']:.4f} -> {a['top1']:.4f}, "
        f"top-5 {b['top5']:.4f} -> {a['top5']:.4f}, ECE {b['ece']:.4f} -> {a['ece']:.4f}",
        err=True,
    )
    shown = result.to_dict()
    if calibrate:
        shown["calibration"] = _run(
            api.calibrate, settings, ws, output, calibrate, show_progress=True
        )
    elif result.source_calibrated:
        shown["calibration"] = None
        typer.secho(
            f"warning: {model} has a calibration (target precision, partial codes) and "
            f"{output} has none: its scores differ, so the old one does not fit. Codes from "
            f"{output} use coder.threshold on the top probability until you run "
            f"`autocoder calibrate --model {output} TITLES.csv` (or retrain with --calibrate).",
            fg=typer.colors.YELLOW, err=True,
        )  # fmt: skip
    fitted = api.refit_examples_for(settings, ws, output)
    if fitted is not None:
        shown["examples_fit"] = {k: fitted[k] for k in ("settings", "figures")}
    _echo(shown)
