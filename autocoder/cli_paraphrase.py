"""``autocoder paraphraser train`` and ``autocoder paraphrase``: the Gemma paraphraser's CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from autocoder.cli_common import echo_json, fail, settings_from

paraphraser_app = typer.Typer(
    no_args_is_help=True, help="Train the Gemma 3 270M paraphraser (trl SFT + peft LoRA, CPU)."
)


@paraphraser_app.command("train")
def paraphraser_train(
    ctx: typer.Context,
    output: Annotated[Path, typer.Option("--output", "-o", help="Paraphraser directory to write.")],
    recipe: Annotated[
        Path | None,
        typer.Option("--recipe", help="Recipe TOML (default: training/paraphraser.toml)."),
    ] = None,
    max_steps: Annotated[int | None, typer.Option(help="Override train.max_steps.")] = None,
    threads: Annotated[
        int | None, typer.Option(help="Override train.threads (torch CPU threads).")
    ] = None,
) -> None:
    """Fine-tune a LoRA adapter on taxonomy title/duties pairs; reports the held-out loss."""
    import logging

    from autocoder.augment.paraphrase import ParaphraserError, train_paraphraser

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings, ws = settings_from(ctx)
    try:
        meta = train_paraphraser(
            recipe,
            output,
            workspace=ws,
            default_taxonomy=settings.taxonomy.default,
            overrides={
                k: v
                for k, v in {"train.max_steps": max_steps, "train.threads": threads}.items()
                if v is not None
            },
            show_progress=True,
        )
    except (ParaphraserError, FileNotFoundError) as exc:
        fail(str(exc))
    meta.pop("recipe", None)
    meta.pop("heldout_codes", None)
    echo_json({"model": str(output), **meta})


def paraphrase_cmd(
    ctx: typer.Context,
    input_path: Annotated[
        Path, typer.Argument(help="Records: id, title and/or duties/description[, code].")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Paraphrase table to write.")],
    per_record: Annotated[int, typer.Option("--per-record", help="Samples per text.")] = 5,
    model: Annotated[
        Path | None,
        typer.Option(
            "--model", help="Paraphraser directory (default: <workspace>/models/paraphraser)."
        ),
    ] = None,
    no_filter: Annotated[
        bool, typer.Option("--no-filter", help="Keep raw samples (no copy or coder check).")
    ] = False,
    coder_model: Annotated[
        Path | None, typer.Option("--coder-model", help="Classifier used by the filter.")
    ] = None,
    label_column: Annotated[str, typer.Option(help="Column with the record's code.")] = "code",
    seed: Annotated[int, typer.Option()] = 0,
    threads: Annotated[int, typer.Option(help="torch CPU threads (0 = default).")] = 0,
) -> None:
    """K paraphrases per record that the current coder still codes to the record's code."""
    from autocoder.api import paraphrase_file
    from autocoder.augment.paraphrase import ParaphraserError
    from autocoder.io import InputError

    settings, ws = settings_from(ctx)
    try:
        summary = paraphrase_file(
            input_path,
            output,
            settings=settings,
            workspace=ws,
            per_record=per_record,
            model_dir=model,
            coder_model=coder_model,
            filter_outputs=not no_filter,
            label_column=label_column,
            seed=seed,
            threads=threads,
        )
    except (ParaphraserError, InputError, FileNotFoundError) as exc:
        fail(str(exc))
    echo_json(summary)
