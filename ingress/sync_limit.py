"""The per-tenant limit of `POST /v1/tenants/{id}/sync`: a sync costs several Stripe reads from
the fleet's shared budget, so one tenant's page reloading in a loop must not spend it.

GCRA per tenant (the same algorithm as bms/rate_limit.py, but answering "not now, retry in N s"
instead of waiting). Per ingress process: N ingresses allow N times the rate, which the fleet-wide
Stripe limit still caps. At most `max_tenants` buckets are kept; the oldest go first.
"""
from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable


class TenantRateLimit:
    def __init__(self, rate_per_s: float, burst: int = 1, *, max_tenants: int = 100_000,
                 clock: Callable[[], float] = time.monotonic):
        self.interval = 1.0 / rate_per_s
        self.capacity = max(1, burst) * self.interval
        self._clock = clock
        self._tat: OrderedDict[str, float] = OrderedDict()
        self._max = max_tenants
        self._lock = threading.Lock()

    def take(self, tenant_id: str) -> int | None:
        """None when the call may go now (and it is counted); else whole seconds to wait."""
        with self._lock:
            now = self._clock()
            tat = max(self._tat.get(tenant_id, now), now) + self.interval
            wait = tat - now - self.capacity
            if wait > 1e-9:
                return max(1, math.ceil(wait))
            self._tat[tenant_id] = tat
            self._tat.move_to_end(tenant_id)
            while len(self._tat) > self._max:
                self._tat.popitem(last=False)
            return None
