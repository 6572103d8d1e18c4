"""The dependencies the bus injects, by the parameter name a handler gives them:

| name | type | what |
| --- | --- | --- |
| `uow_factory` | `UowFactory` | opens a unit of work (one transaction): `with uow_factory() as uow:` |
| `gateway` | `bms.port.BillingGateway` | Stripe |
| `catalog` | `config.catalog.Catalog` | the plan catalog |
| `now` | `Clock` | the time (a test's clock stands still until told to move) |
| `settings` | `config.settings.Settings` | the deployment's settings |
| `send_command` | `SendCommand` | enqueue a command envelope for the workers' `apply_command` |
| `enqueue_stripe_event` | `SendCommand` | enqueue `{"event", "received_at"}` for the workers' `process_stripe_event` |
| `progress` | `Progress` | a long job's progress, `(stage, done, total or None)`; a bar in the CLI, nothing by default |

`bootstrap.bootstrap()` builds them; a handler asks only for those it uses.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Callable

from ..models import UnitOfWork

UowFactory = Callable[[], UnitOfWork]
Clock = Callable[[], datetime]
SendCommand = Callable[[dict[str, Any]], None]
Progress = Callable[[str, int, int | None], None]


def no_progress(stage: str, done: int, total: int | None) -> None:
    """Nobody watches (the scheduler's runs): the default of every handler that reports progress."""
