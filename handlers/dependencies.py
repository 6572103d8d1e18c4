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

`bootstrap.bootstrap()` builds them; a handler asks only for those it uses.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Callable

from ..models import UnitOfWork

UowFactory = Callable[[], UnitOfWork]
Clock = Callable[[], datetime]
SendCommand = Callable[[dict[str, Any]], None]
