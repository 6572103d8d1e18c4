"""How an error raised below any sub-command reaches the operator: one line on stderr and the
exit code of its kind (2 configuration, 3 safety refusal, 1 an outage at start-up), never a
traceback."""
from __future__ import annotations

import click
from pydantic import ValidationError

from ..config.settings import describe_settings_error
from ..errors import ConfigurationError, SafetyRefusal, TransientError


class OneLineError(click.ClickException):
    """Printed as one line on stderr, with the exit code of its kind (2 configuration, 3 refusal)."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file=None) -> None:
        click.echo(f"billing-sync: {self.format_message()}", err=True)


class OneLineErrors(click.Group):
    """Turns configuration errors and safety refusals, raised anywhere below, into one line."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ValidationError as exc:
            raise OneLineError(f"configuration error: {describe_settings_error(exc)}", 2) from exc
        except ConfigurationError as exc:
            raise OneLineError(f"configuration error: {exc}", exc.exit_code) from exc
        except SafetyRefusal as exc:
            raise OneLineError(f"refused: {exc}", exc.exit_code) from exc
        except TransientError as exc:  # an outage at start-up: exit 1, so a supervisor retries
            raise OneLineError(f"unavailable: {exc}", 1) from exc
