"""`billing.payment_method.expiring`: a scheduler job (database only) that announces, once per
card, that the card a tenant's renewals charge stops working within 30 days.

No Stripe event says so; the card's expiry is in the mirror (handlers/billing_account.py). "Once
per card" is kept in `billing_accounts.expiring_announced` (the card's id and expiry), written in
the transaction that queues the event, under the tenant's lock: a new card, or the same card
with a new expiry (Stripe's card updater), is announced again when its own time comes.
"""
from __future__ import annotations

from datetime import datetime

from typing import Any

import structlog
from .billing_document import card_expires_at, card_expiring_from
from .dependencies import Clock, UowFactory

log = structlog.get_logger(__name__)


def _key(card: dict[str, Any]) -> str:
    return f"{card.get('id')}:{card.get('exp_year')}-{card.get('exp_month')}"


def announce_expiring_cards(*, uow_factory: UowFactory, now: Clock) -> int:
    """Queue the event for every card within `EXPIRING_WITHIN` of its expiry (and not expired
    yet) that was not announced; returns how many."""
    at = now()
    with uow_factory() as uow:
        candidates = [tenant_id for tenant_id, card, announced in uow.billing_accounts.cards()
                      if _due(card, announced, at)]
    announced = 0
    for tenant_id in candidates:
        with uow_factory() as uow:
            uow.tenants.lock(tenant_id)
            account = uow.billing_accounts.locked(tenant_id)
            card = account.payment_method if account else None
            expires_at = card_expires_at(card) if card else None
            if account is None or card is None or expires_at is None or not _due(card, account.expiring_announced, at):
                continue  # changed since the scan
            account.expiring_announced = _key(card)
            uow.outbox.add("billing.payment_method.expiring", tenant_id, {
                "tenant_id": tenant_id, "brand": card.get("brand"), "last4": card.get("last4"),
                "exp_month": card.get("exp_month"), "exp_year": card.get("exp_year"),
                "expires_at": expires_at.isoformat()})
            uow.commit()
            announced += 1
    if announced:
        log.info("billing.expiring_cards_announced", count=announced)
    return announced


def _due(card: dict[str, Any] | None, announced: str | None, now: datetime) -> bool:
    if not card:
        return False
    expires_at = card_expires_at(card)
    return (expires_at is not None and card_expiring_from(expires_at) <= now < expires_at
            and announced != _key(card))
