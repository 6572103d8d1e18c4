"""`billing-sync tenant show | explain`: a tenant's story in time order, and why it has what it has
(`handlers/tenant_timeline.py`, `handlers/tenant_explanation.py`); the documents they print."""
from __future__ import annotations

from contextlib import suppress
from datetime import datetime
from typing import Any

from ..handlers.messagebus import Bus
from ..handlers.tenant_explanation import explain_tenant
from ..handlers.tenant_timeline import DEFAULT_LIMIT, tenant_timeline


def _bus(bus: Bus | None) -> Bus:
    if bus is not None:
        return bus
    from ..bootstrap import bootstrap

    return bootstrap()


def show(tenant_id: str, *, since: datetime | None = None, limit: int = DEFAULT_LIMIT,
         bus: Bus | None = None) -> tuple[dict[str, Any], int]:
    """(the timeline, the exit code): 1 when nothing at all is known of the tenant."""
    document = _bus(bus).call(tenant_timeline, tenant_id, since=since, limit=limit)
    return document, 0 if document["found"] else 1


def explain(tenant_id: str, *, live: bool = True, bus: Bus | None = None) -> tuple[dict[str, Any], int]:
    """(the explanation, the exit code): 1 when the tenant is unknown or Stripe could not be read."""
    bus = _bus(bus)
    if live:
        from ..errors import TransientError
        from ..handlers.account_pin import check_account

        # A live read of another account's Stripe would mislead: refused (exit 3). Stripe
        # unreachable: the live part says so.
        with suppress(TransientError):
            bus.call(check_account, pin=False)
    document = bus.call(explain_tenant, tenant_id, live=live)
    failed = not document["found"] or (document["live"] is not None and "error" in document["live"])
    return document, 1 if failed else 0
