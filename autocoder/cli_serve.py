"""``autocoder serve`` and ``autocoder serve keys``: the HTTP coding service."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from autocoder.cli_common import echo_json, fail, settings_from

serve_app = typer.Typer(
    help="Run the HTTP coding service (FastAPI on uvicorn; OpenAPI docs at /docs).",
    invoke_without_command=True,
)
keys_app = typer.Typer(no_args_is_help=True, help="API keys (only their hashes are stored).")
serve_app.add_typer(keys_app, name="keys")


@serve_app.callback()
def serve_cmd(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Bind address (default serve.host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default serve.port).")] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Worker processes (default serve.workers).")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="Model directory, `pretrained` (the packaged model) or `retrieval` "
            "(default coder.model), as for `autocoder code --model`."
        ),
    ] = None,
) -> None:
    """Serve /v1/code, /v1/jobs, /v1/codes, /v1/search, /v1/review, /healthz, /readyz, /metrics.

    Anything but a loopback address is refused (exit 2) unless API keys are configured."""
    if ctx.invoked_subcommand is not None:
        return
    from autocoder.service.run import ServeError, serve

    given = {"host": host, "port": port, "workers": workers}
    overrides = [f"serve.{k}={json.dumps(v)}" for k, v in given.items() if v is not None]
    if model is not None:
        overrides.append(f"coder.model={json.dumps(model)}")
    settings, ws = settings_from(ctx, overrides)
    state: dict[str, Any] = ctx.find_root().obj or {}
    config = state.get("config")
    try:
        serve(
            settings, ws, config=str(config) if config else None,
            overrides=[*(state.get("overrides") or []), *overrides],
        )  # fmt: skip
    except ServeError as exc:
        fail(str(exc))


@keys_app.command("add")
def keys_add(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Who uses it.")]) -> None:
    """Make a key; it is printed once (store it now) and only its hash is kept."""
    from autocoder.service.keys import KeyStore, KeyStoreError

    _, ws = settings_from(ctx)
    try:
        key = KeyStore.of(ws).add(name)
    except KeyStoreError as exc:
        fail(str(exc))
    typer.echo(key)
    typer.secho(f"key {name!r} created; it is not shown again", err=True)


@keys_app.command("list")
def keys_list(ctx: typer.Context) -> None:
    """Names, creation and revocation times (never the keys)."""
    from autocoder.service.keys import KeyStore

    _, ws = settings_from(ctx)
    echo_json(
        [{"name": k.name, "created": k.created, "revoked": k.revoked, "active": k.active}
         for k in KeyStore.of(ws).list()]
    )  # fmt: skip


@keys_app.command("revoke")
def keys_revoke(ctx: typer.Context, name: Annotated[str, typer.Argument()]) -> None:
    """Revoke a key: running workers refuse it from their next request."""
    from autocoder.service.keys import KeyStore, KeyStoreError

    _, ws = settings_from(ctx)
    try:
        KeyStore.of(ws).revoke(name)
    except KeyStoreError as exc:
        fail(str(exc))
    typer.echo(f"revoked {name!r}")
