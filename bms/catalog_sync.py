"""Make Stripe sell what the catalog describes: one product and one recurring price per paid plan
(found by the price's lookup_key), and one billing meter per catalog meter.

Commands resolve a plan to a Stripe price by lookup_key, so these must exist before the first
`billing.tenant.provisioned`. `up` and the demo run this against the emulator at start; operators
run it once against their Stripe account. It is idempotent: what exists is reused, and the
idempotency keys are derived from the parameters, so a re-run after a crash repeats the same
requests, and a re-run after a catalog change makes new requests.

Stripe prices are immutable: when the catalog's amount, currency or interval differs from the
active price, a new price takes over the lookup_key (`transfer_lookup_key`); subscriptions on
the old price keep it until changed.
"""
from __future__ import annotations

import hashlib
import json

import structlog

from ..config.catalog import Catalog, Plan

log = structlog.get_logger(__name__)


def ensure_catalog(gateway, catalog: Catalog, progress=None) -> dict[str, dict]:
    """Create what is missing; return the active Stripe price of every paid plan, by plan key.
    `progress(stage, done, total)`, when given, hears of each plan done (the CLI's bar)."""
    prices: dict[str, dict] = {}
    products = None  # listed lazily, only when a price is missing
    report = progress or (lambda stage, done, total: None)
    plans = catalog.paid_plans
    for plan in plans:
        report("plans synced", len(prices), len(plans))
        price = gateway.find_price_by_lookup_key(plan.paid_price.lookup_key)
        if price is not None and _matches(price, plan):
            prices[plan.key] = price
            continue
        if products is None:
            products = list(gateway.list_products())
        product_id = price["product"] if price is not None else _product_for(gateway, plan, products)
        if isinstance(product_id, dict):
            product_id = product_id["id"]
        params = {
            "product": product_id,
            "lookup_key": plan.paid_price.lookup_key,
            "unit_amount": plan.paid_price.unit_amount,
            "currency": plan.paid_price.currency,
            "recurring": {"interval": plan.paid_price.interval},
            "metadata": {"plan": plan.key},
        }
        if price is not None:
            params["transfer_lookup_key"] = True
        prices[plan.key] = gateway.create_price(params, idempotency_key=_key("price", params))
        log.info("catalog.price_created", plan=plan.key, price_id=prices[plan.key]["id"])
    report("plans synced", len(prices), len(plans))
    _ensure_meters(gateway, catalog)
    return prices


def _matches(price: dict, plan: Plan) -> bool:
    recurring = price.get("recurring") or {}
    return (price.get("unit_amount") == plan.paid_price.unit_amount
            and price.get("currency") == plan.paid_price.currency
            and recurring.get("interval") == plan.paid_price.interval)


def _product_for(gateway, plan: Plan, products: list[dict]) -> str:
    """The active product tagged with this plan, else a new one."""
    for product in products:
        if product.get("active", True) and (product.get("metadata") or {}).get("plan") == plan.key:
            return product["id"]
    params = {"name": plan.name, "metadata": {"plan": plan.key}}
    product = gateway.create_product(params, idempotency_key=_key("product", params))
    products.append(product)
    log.info("catalog.product_created", plan=plan.key, product_id=product["id"])
    return product["id"]


def _ensure_meters(gateway, catalog: Catalog) -> None:
    """A billing meter per catalog meter: Stripe rejects meter events for an unknown event_name."""
    if not catalog.meters:
        return
    existing = {m.get("event_name") for m in gateway.list_meters() if m.get("status", "active") == "active"}
    for meter in catalog.meters.values():
        if meter.event_name in existing:
            continue
        params = {
            "display_name": meter.key,
            "event_name": meter.event_name,
            "default_aggregation": {"formula": "sum"},
            "customer_mapping": {"type": "by_id", "event_payload_key": "stripe_customer_id"},
            "value_settings": {"event_payload_key": "value"},
        }
        created = gateway.create_meter(params, idempotency_key=_key("meter", params))
        log.info("catalog.meter_created", meter=meter.key, meter_id=created.get("id"))


def _key(kind: str, params: dict) -> str:
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:24]
    return f"billing-sync-catalog:{kind}:{digest}"
