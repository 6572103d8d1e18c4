"""Stripe's objects as the port's typed views (bms/port.py): the one place that reads their shapes
(Stripe API 2026-10-28: periods on subscription items, the price embedded in each item).

The SDK adapter and the unit tests' fake both answer Stripe's plain dicts; the intents
(bms/requests.py) turn them into views here, so handlers never index a Stripe object.
"""
from __future__ import annotations

from ..contract.ids import is_tenant_id
from .port import CustomerView, ItemView, PriceView, ProductView, SubscriptionView


def customer_view(customer: dict) -> CustomerView:
    invoice_settings = customer.get("invoice_settings") or {}
    tenant_id = (customer.get("metadata") or {}).get("tenant_id")
    return CustomerView(
        id=customer["id"],
        created=customer.get("created") or 0,
        # Anyone with dashboard access can write metadata: a value that breaks the tenant-id rule
        # (contract/ids.py) was not written by us and names no tenant.
        tenant_id=tenant_id if is_tenant_id(tenant_id) else None,
        test_clock=_id_of(customer.get("test_clock")),
        has_payment_method=bool(invoice_settings.get("default_payment_method") or customer.get("default_source")),
        name=customer.get("name"),
        email=customer.get("email"),
        default_payment_method=_id_of(invoice_settings.get("default_payment_method")) or _id_of(
            customer.get("default_source")),
        address=customer.get("address"),
        tax_ids=tuple((t.get("type") or "", t.get("value") or "")
                      for t in ((customer.get("tax_ids") or {}).get("data") or []) if isinstance(t, dict)),
    )


def subscription_view(sub: dict) -> SubscriptionView:
    items = tuple(_item_view(item) for item in sub["items"]["data"])
    starts = [i.current_period_start for i in items if i.current_period_start]
    ends = [i.current_period_end for i in items if i.current_period_end]
    return SubscriptionView(
        id=sub["id"],
        customer=_id_of(sub.get("customer")) or "",
        status=sub["status"],
        created=sub.get("created") or 0,
        cancel_at_period_end=bool(sub.get("cancel_at_period_end")),
        cancel_at=sub.get("cancel_at"),
        items=items,
        trial_end=sub.get("trial_end"),
        canceled_at=sub.get("canceled_at"),
        default_payment_method=_id_of(sub.get("default_payment_method")),
        period_start=min(starts) if starts else sub.get("current_period_start") or None,
        period_end=max(ends) if ends else sub.get("current_period_end") or None,
    )


def _item_view(item: dict) -> ItemView:
    price = item["price"]
    return ItemView(
        id=item["id"],
        price_id=price["id"],
        lookup_key=price.get("lookup_key"),
        quantity=item.get("quantity"),
        metered=(price.get("recurring") or {}).get("usage_type") == "metered",
        current_period_start=item.get("current_period_start"),
        current_period_end=item.get("current_period_end"),
        product_id=_id_of(price.get("product")),
    )


def product_view(product: dict) -> ProductView:
    return ProductView(id=product["id"], name=product.get("name"), active=bool(product.get("active", True)),
                       metadata=dict(product.get("metadata") or {}))


def price_view(price: dict) -> PriceView:
    recurring = price.get("recurring") or {}
    return PriceView(id=price["id"], product_id=_id_of(price.get("product")), lookup_key=price.get("lookup_key"),
                     active=bool(price.get("active", True)), unit_amount=price.get("unit_amount"),
                     currency=price.get("currency"), interval=recurring.get("interval"),
                     interval_count=recurring.get("interval_count"), trial_days=recurring.get("trial_period_days"))


def _id_of(ref: object) -> str | None:
    """An expandable field: an id, or the expanded object."""
    if isinstance(ref, dict):
        return ref.get("id")
    return ref if isinstance(ref, str) else None
