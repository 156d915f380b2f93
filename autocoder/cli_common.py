"""What every ``autocoder`` command group shares: settings from the root context, errors, JSON."""

from __future__ import annotations

import errno
import json
from dataclasses import asdict, is_dataclass
from typing import Any, NoReturn

import typer
from typer.core import TyperGroup

from autocoder.config import ConfigError, Settings, load_settings
from autocoder.extras import MissingExtra
from autocoder.redact import redact
from autocoder.workspace import Workspace, WorkspaceError

#: Errors of the machine, not of the input: a full disk (exit 1, nothing is lost).
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
#: The user cannot write where they asked to (exit 2: a path to change).
NOT_PERMITTED = (errno.EACCES, errno.EPERM, errno.EROFS)


def os_error_message(exc: OSError) -> tuple[str, int]:
    """One line for an ``OSError`` that reached the command line, and its exit code."""
    where = f" ({exc.filename})" if exc.filename else ""
    if exc.errno in DISK_FULL:
        return (
            f"no space left on device{where}: free some space and run the same command "
            "again; finished work is kept (a coding job resumes) and no earlier output "
            "was overwritten",
            1,
        )
    if exc.errno in NOT_PERMITTED:
        return f"cannot write{where}: {exc.strerror}", 2
    return f"{exc.strerror or exc}{where}", 1


class AutocoderGroup(TyperGroup):
    """The root command group: a feature whose optional dependencies are missing ends in one
    line naming the ``pip install`` to run (exit 2); an ``OSError`` no command handled (a full disk, a read-only
    folder) ends as one ``error:`` line and an exit code, never a traceback."""

    def invoke(self, ctx: Any) -> Any:  # typer's own (vendored) click Context
        try:
            return super().invoke(ctx)
        except MissingExtra as exc:
            fail(str(exc))
        except OSError as exc:
            message, code = os_error_message(exc)
            fail(message, code)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``error: message`` on stderr (credentials redacted, the last safety net) and exit
    with ``code`` (2 = bad input/config, 1 = a fault)."""
    typer.secho(f"error: {redact(message)}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


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
    try:
        return settings, Workspace.resolve(settings.workspace.home)
    except WorkspaceError as exc:
        fail(str(exc))


def echo_json(data: Any) -> None:
    """Print ``data`` (a dataclass instance is turned into a dict) as indented JSON."""
    if is_dataclass(data) and not isinstance(data, type):
        data = asdict(data)
    typer.echo(json.dumps(data, indent=2, default=str))
