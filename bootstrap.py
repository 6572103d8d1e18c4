"""`bootstrap()` builds the message bus from explicit dependencies: a unit-of-work factory over
the database, the Stripe port (`bms.port.BillingGateway`, the `stripe`-SDK adapter unless one is
given), the catalog, the clock, the settings and the command sender. Each handler gets, injected
by name, the ones it declares (handlers/messagebus.py, handlers/dependencies.py).

Every process builds its own bus: a worker's is built by its broker on the first message (see
`workers/actors.BusSlot`), `up` (fleet.py) and each role's `main` build one and pass it down, tests
build one over fakes (tests/contexts.py). Nothing here is global.
"""
from __future__ import annotations

from datetime import datetime
from typing import Callable

from sqlalchemy import Engine

from .bms.gateway import RateLimiter, StripeGateway
from .bms.port import BillingGateway
from .bms.rate_limit import make_meter_rate_limiter, make_rate_limiter
from .config.catalog import Catalog, cached_catalog
from .config.settings import Settings, get_settings
from .handlers import registry
from .handlers.dependencies import SendCommand
from .handlers.messagebus import Bus
from .models import make_engine, unit_of_work_factory, utcnow


def _sends_nothing(envelope: dict) -> None:
    raise RuntimeError("this bus sends nothing to the workers: build it with bootstrap(send_command=…, "
                       "enqueue_stripe_event=…), install it on a broker (workers.actors.declare_actors) or run "
                       "it in a Scheduler")


def bootstrap(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    gateway: BillingGateway | None = None,
    rate_limiter: RateLimiter | None = None,
    catalog: Catalog | None = None,
    now: Callable[[], datetime] = utcnow,
    send_command: SendCommand = _sends_nothing,
    enqueue_stripe_event: SendCommand = _sends_nothing,
) -> Bus:
    """The bus, with every dependency not given built from `settings` (the environment's)."""
    settings = settings or get_settings()
    engine = engine or make_engine(settings.database_url, pool_size=settings.database_pool_size,
                                     max_overflow=settings.database_max_overflow)
    if gateway is None:
        gateway = StripeGateway(
            settings.stripe_api_key.get_secret_value(),
            api_base=settings.stripe_api_base,
            rate_limiter=make_rate_limiter(settings) if rate_limiter is None else rate_limiter,
            meter_rate_limiter=make_meter_rate_limiter(settings) if rate_limiter is None else None,
        )
    dependencies = {
        "uow_factory": unit_of_work_factory(engine),
        "gateway": gateway,
        "catalog": catalog or cached_catalog(str(settings.catalog)),
        "now": now,
        "settings": settings,
        "send_command": send_command,
        "enqueue_stripe_event": enqueue_stripe_event,
        "stripe_families": registry.STRIPE_EVENT_FAMILIES,
    }
    tables = {"command_handlers": registry.COMMAND_HANDLERS}
    return Bus(registry.ROUTES, dependencies, tables=tables, engine=engine)
