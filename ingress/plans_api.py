"""`GET /v1/plans[?tenant_id=]`: the catalog's plans for a pricing page, with Stripe's live
prices as last mirrored (handlers/plan_prices.py; no Stripe call per request), their features
and limits, and, for a tenant, whether each plan is its `current` one, an `upgrade` or a
`downgrade` (by monthly price; between equal prices, by the catalog's order). Service token.
"""
from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..config.catalog import Plan
from ..contract.ids import is_tenant_id
from ..handlers.messagebus import Bus
from ..models import PlanPrice
from .auth import Authenticator
from .billing_api import bad_parameter
from .service_auth import invalid_tenant_id

# Months per interval, to compare a yearly price with a monthly one.
MONTHS = {"day": 1 / 30, "week": 7 / 30, "month": 1, "year": 12}


def price_json(plan: Plan, row: PlanPrice | None) -> dict | None:
    """The live price when Stripe has one; else the catalog's figures with `live: false`."""
    if row is not None and row.price_id:
        return {"id": row.price_id, "lookup_key": row.lookup_key, "amount": row.unit_amount,
                "currency": row.currency, "interval": row.interval, "interval_count": row.interval_count or 1,
                "trial_days": row.trial_days, "live": True}
    if plan.price is None:
        return None
    return {"id": None, "lookup_key": plan.price.lookup_key, "amount": plan.price.unit_amount,
            "currency": plan.price.currency, "interval": plan.price.interval, "interval_count": 1,
            "trial_days": None, "live": False}


def monthly(price: dict | None) -> float:
    if price is None or price["amount"] is None:
        return 0.0
    months = MONTHS.get(price["interval"] or "month", 1) * (price["interval_count"] or 1)
    return price["amount"] / months


def routes(bus: Bus) -> list[Route]:
    auth = Authenticator(bus)

    def load(tenant_id: str | None) -> dict:
        with bus.uow_factory() as uow:
            rows = uow.plan_prices.all()
            plans = list(bus.catalog.plans.values())
            prices = [price_json(p, rows.get(p.key)) for p in plans]
            data: list[dict[str, Any]] = [
                {"key": p.key, "name": p.name, "price": price, "features": sorted(p.features),
                 "limits": dict(p.limits), "per_seat": dict(p.per_seat)}
                for p, price in zip(plans, prices, strict=True)]
            snapshot = uow.snapshots.get(tenant_id) if tenant_id else None
            current = snapshot.plan if snapshot is not None else bus.catalog.free_plan
        if tenant_id is not None:
            order = {p.key: (monthly(price), i) for i, (p, price) in enumerate(zip(plans, prices, strict=True))}
            mine = order.get(current, (0.0, -1))
            for entry in data:
                rank = order[entry["key"]]
                entry["change"] = ("current" if entry["key"] == current
                                   else "upgrade" if rank > mine else "downgrade")
        return {"object": "list", "data": data}

    async def plans(request: Request) -> Response:
        if denied := auth.deny(request):
            return denied
        query = request.query_params
        unknown = sorted(set(query.keys()) - {"tenant_id"})
        if unknown:
            return bad_parameter(unknown[0], "unknown parameter; this endpoint takes tenant_id")
        tenant_id = query.get("tenant_id")
        if tenant_id is not None and (len(query.getlist("tenant_id")) > 1 or not is_tenant_id(tenant_id)):
            return invalid_tenant_id()
        return JSONResponse(await run_in_threadpool(load, tenant_id), headers={"Cache-Control": "no-cache"})

    return [Route("/v1/plans", plans, methods=["GET"])]
