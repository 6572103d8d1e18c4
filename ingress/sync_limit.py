"""The per-tenant limit of `POST /v1/tenants/{id}/sync`: a sync costs several Stripe reads from
the fleet's shared budget, so one tenant's page reloading in a loop must not spend it.

GCRA per tenant (the algorithm of bms/rate_limit.py, but answering "not now, retry in N s"
instead of waiting), its state one row per tenant in the database every ingress already shares
(`uow.sync_budgets`), so the limit holds for the whole fleet however many ingresses serve it.
The clock is the ingress's (the bus's `now`); clocks of different machines within
`BILLING_CLOCK_SKEW_MARGIN_S` of each other move a limit of a few calls a minute by nothing that
matters. It costs one short transaction per sync, which itself costs several Stripe reads.
"""
from __future__ import annotations

import math

from ..handlers.messagebus import Bus
from ..models import database_errors_are_transient


class TenantRateLimit:
    def __init__(self, bus: Bus, rate_per_s: float, burst: int = 1):
        self.interval = 1.0 / rate_per_s
        self.capacity = max(1, burst) * self.interval
        self._bus = bus

    def take(self, tenant_id: str) -> int | None:
        """None when the call may go now (and it is counted); else whole seconds to wait. Raises
        `TransientError` when the database is unavailable (blocking: run it in the thread pool)."""
        with database_errors_are_transient(), self._bus.uow_factory() as uow:
            wait = uow.sync_budgets.take(tenant_id, self._bus.now().timestamp(), self.interval, self.capacity)
            uow.commit()
        return None if wait is None else max(1, math.ceil(wait - 1e-9))
