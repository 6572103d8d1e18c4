"""How an error raised below any sub-command reaches the operator: one line on stderr and the
exit code of its kind, never a traceback.

    2  configuration: a setting, the catalog, an argument, a database that does not exist or has
       no schema, a Stripe key that Stripe refuses (fix the configuration, then run again)
    3  refusal by a safety rail (wrong Stripe account, a mass change): the line says how to proceed
    1  an outage at start-up (database, broker or Stripe unreachable): a supervisor retries

Every role starts below this edge (`billing-sync worker`, `ingress`, ...), so this is also each
role's start-up translation; errors after start-up are the role's own business (retries, logs).
"""
from __future__ import annotations

import click
from pydantic import ValidationError

from ..config.settings import describe_settings_error
from ..errors import ConfigurationError, SafetyRefusal, TransientError

CONFIGURATION, OUTAGE, REFUSAL = 2, 1, 3
# PostgreSQL SQLSTATEs that mean "the configuration names something that is not there".
PG_MISSING_DATABASE = "3D000"
PG_BAD_LOGIN = ("28P01", "28000")
PG_NO_TABLE = "42P01"


class OneLineError(click.ClickException):
    """Printed as one line on stderr, with the exit code of its kind (2 configuration, 3 refusal)."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file=None) -> None:
        click.echo(f"billing-sync: {self.format_message()}", err=True)


def _causes(exc: BaseException | None):
    """`exc` and what it was raised from (`raise … from`), not what it happened to be raised
    while handling: a bug in an `except` block stays a bug."""
    while exc is not None:
        yield exc
        exc = exc.__cause__


def _database_error(exc: BaseException) -> OneLineError | None:
    from sqlalchemy.exc import DBAPIError

    if not isinstance(exc, DBAPIError):
        return None
    from ..config.settings import get_settings
    from ..config.urls import redact

    where = f"BILLING_DATABASE_URL={redact(get_settings().database_url)}"
    sqlstate = getattr(exc.orig, "sqlstate", None)
    first_line = str(exc.orig).strip().splitlines()[0][:200] if str(exc.orig).strip() else type(exc.orig).__name__
    if sqlstate == PG_MISSING_DATABASE or "does not exist" in first_line and "database" in first_line:
        return OneLineError(f"configuration error: {where}: {first_line} (create it, then "
                            "`billing-sync db upgrade`)", CONFIGURATION)
    if sqlstate in PG_BAD_LOGIN or "password authentication failed" in first_line:
        return OneLineError(f"configuration error: {where}: {first_line}", CONFIGURATION)
    if sqlstate == PG_NO_TABLE or "no such table" in first_line:
        return OneLineError(f"configuration error: {where}: the database has no schema yet "
                            "(run `billing-sync db upgrade`)", CONFIGURATION)
    if "unable to open database file" in first_line:  # SQLite: a path it cannot create or write
        return OneLineError(f"configuration error: {where}: {first_line}", CONFIGURATION)
    if sqlstate is None or sqlstate.startswith("08"):
        return OneLineError(f"unavailable: {where}: {first_line}", OUTAGE)
    return None


def _stripe_error(exc: BaseException) -> OneLineError | None:
    import stripe

    if isinstance(exc, stripe.AuthenticationError):
        return OneLineError("configuration error: BILLING_STRIPE_API_KEY: Stripe refused the key "
                            f"({exc.http_status or 401}: invalid, expired or revoked)", CONFIGURATION)
    if isinstance(exc, stripe.PermissionError):
        return OneLineError("configuration error: BILLING_STRIPE_API_KEY: the restricted key lacks a "
                            "permission billing-sync needs", CONFIGURATION)
    if isinstance(exc, stripe.APIConnectionError):
        return OneLineError(f"unavailable: Stripe: {type(exc).__name__}", OUTAGE)
    return None


def _broker_error(exc: BaseException) -> OneLineError | None:
    """Redis or RabbitMQ (redis-py, kombu, py-amqp, pika) unreachable at start-up."""
    module = type(exc).__module__.split(".")[0]
    name = type(exc).__name__
    unreachable = (module in ("redis", "kombu", "amqp", "pika")
                   and any(word in name for word in ("Connection", "Timeout", "OperationalError")))
    if unreachable or isinstance(exc, ConnectionError | TimeoutError):
        return OneLineError(f"unavailable: {module} {name}: {str(exc)[:160]}".rstrip(": "), OUTAGE)
    return None


def one_line(exc: BaseException) -> OneLineError | None:
    """The line and exit code for `exc`, raised before a role's loop ran; None for a bug (a
    traceback in the log is the right answer to a bug)."""
    if isinstance(exc, ValidationError):
        return OneLineError(f"configuration error: {describe_settings_error(exc)}", CONFIGURATION)
    if isinstance(exc, ConfigurationError):
        return OneLineError(f"configuration error: {exc}", exc.exit_code)
    if isinstance(exc, SafetyRefusal):
        return OneLineError(f"refused: {exc}", exc.exit_code)
    if isinstance(exc, click.UsageError):
        where = exc.ctx.command_path if exc.ctx else "billing-sync"
        return OneLineError(f"{where}: {exc.format_message()} (see `{where} -h`)", CONFIGURATION)
    for cause in _causes(exc):  # the gateway and the unit of work wrap the library's errors
        found = _database_error(cause) or _stripe_error(cause) or _broker_error(cause)
        if found is not None:
            return found
    if isinstance(exc, TransientError):  # an outage at start-up: exit 1, so a supervisor retries
        return OneLineError(f"unavailable: {exc}", OUTAGE)
    return None


def exit_code_of(exc: BaseException) -> int:
    """The exit code `exc` means (`config check` grades each failed check with it); 1 for a bug."""
    found = one_line(exc)
    return found.exit_code if found is not None else OUTAGE


class OneLineErrors(click.Group):
    """Turns configuration errors, refusals and outages, raised anywhere below, into one line."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.Abort, OneLineError):
            raise
        except Exception as exc:
            found = one_line(exc)
            if found is None:
                raise
            raise found from exc
