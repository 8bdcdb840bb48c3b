"""What every `armvisor` subcommand does with bad input: one line, exit code 2."""

from __future__ import annotations

import functools
from typing import Callable

import click

from armvisor.errors import ArmvisorError


def one_line_errors(command: Callable) -> Callable:
    """Turn ArmvisorError and OSError into click's one-line usage errors (exit 2)."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except ArmvisorError as exc:
            raise click.ClickException(str(exc)) from None
        except OSError as exc:
            raise click.ClickException(f"{exc.filename or 'I/O'}: {exc.strerror}") from None
    return wrapper
