"""Wires the dependencies that handlers get: a unit-of-work factory, the Stripe gateway, the
catalog, the clock. Workers, the ingress and tests build one Context each and pass it down."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

from sqlalchemy import Engine

from .bms.gateway import RateLimiter, StripeGateway
from .bms.rate_limit import make_rate_limiter
from .config.catalog import Catalog, cached_catalog
from .config.settings import Settings, get_settings
from .models import UnitOfWork, make_engine, unit_of_work_factory, utcnow


@dataclass
class Context:
    settings: Settings
    engine: Engine
    uow: Callable[[], UnitOfWork]
    bms: StripeGateway
    catalog: Catalog
    now: Callable[[], datetime] = field(default=utcnow)


def build_context(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    bms: StripeGateway | None = None,
    rate_limiter: RateLimiter | None = None,
) -> Context:
    settings = settings or get_settings()
    engine = engine or make_engine(settings.database_url)
    if bms is None:
        bms = StripeGateway(
            settings.stripe_api_key.get_secret_value(),
            api_base=settings.stripe_api_base,
            rate_limiter=make_rate_limiter(settings) if rate_limiter is None else rate_limiter,
        )
    return Context(
        settings=settings,
        engine=engine,
        uow=unit_of_work_factory(engine),
        bms=bms,
        catalog=cached_catalog(str(settings.catalog)),
    )
