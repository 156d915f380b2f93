"""What every ``autocoder`` command group shares: settings from the root context, errors, JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, is_dataclass
from typing import Any, NoReturn

import typer
from typer.core import TyperGroup

from autocoder.config import ConfigError, Settings, load_settings
from autocoder.extras import MissingExtra
from autocoder.workspace import Workspace


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code`` (2 = bad input/config)."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


class Commands(TyperGroup):
    """The root command group: a feature whose optional dependencies are missing ends in one
    line naming the ``pip install`` to run (exit 2), whichever command needed it."""

    def invoke(self, ctx: Any) -> Any:  # typer vendors click: its Context is private
        try:
            return super().invoke(ctx)
        except MissingExtra as exc:
            fail(str(exc))


def settings_from(
    ctx: typer.Context, overrides: list[str] | None = None
) -> tuple[Settings, Workspace]:
    """Settings from the root command's ``--config``/``--set`` (plus ``overrides``) and the
    workspace they name; a bad configuration exits 2 with the (redacted) validation message."""
    state: dict[str, Any] = ctx.find_root().obj or {}
    try:
        settings = load_settings(
            state.get("config"), [*(state.get("overrides") or []), *(overrides or [])]
        )
    except ConfigError as exc:
        fail(str(exc))
    return settings, Workspace.resolve(settings.workspace.home)


def echo_json(data: Any) -> None:
    """Print ``data`` (a dataclass instance is turned into a dict) as indented JSON."""
    if is_dataclass(data) and not isinstance(data, type):
        data = asdict(data)
    typer.echo(json.dumps(data, indent=2, default=str))
