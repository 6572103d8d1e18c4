"""Re-reading products from Stripe (their metadata and attached Entitlements features) into
their mirror rows: for a subscription on a product new to us, an entitlement summary (Stripe
sends one for a feature attached to or detached from a product) and a product or price event."""
from __future__ import annotations

from datetime import datetime

from ..bms.port import BillingGateway
from ..models import UnitOfWork
from .dependencies import Clock
from .mirror import apply_product


def ensure_products(uow: UnitOfWork, product_ids: set[str], *, gateway: BillingGateway, now: Clock) -> None:
    """Read from Stripe the products we have never seen, so their enrichment counts at once.
    Known products are kept fresh by product events and the sweep, not re-read per event."""
    for product_id in sorted(product_ids):
        if uow.products.get(product_id) is None:
            _read_product(uow, product_id, gateway=gateway, now=now)


def refresh_products(uow: UnitOfWork, product_ids: set[str], fresh_after: datetime, *, gateway: BillingGateway,
                     now: Clock) -> None:
    """Re-read products whose copy was read before `fresh_after` (the event's), each under its
    row lock: of many tenants' events that arrive together after one product change, the first
    reads and the rest wait for it and find the copy fresh. Sorted ids keep the lock order stable."""
    for product_id in sorted(product_ids):
        row = uow.products.locked(product_id)
        if row is None or row.synced_at < fresh_after:
            _read_product(uow, product_id, gateway=gateway, now=now)


def _read_product(uow: UnitOfWork, product_id: str, *, gateway: BillingGateway, now: Clock) -> None:
    """Read a product and its attached features from Stripe and mirror them."""
    read_at = now()  # before the read (see StripeEvent.fresh)
    product = gateway.product(product_id)
    keys = gateway.product_feature_keys(product_id) if product else []
    apply_product(uow, product_id, product, keys, read_at)
