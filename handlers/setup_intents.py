"""setup_intent.succeeded: the card the customer just confirmed in-app (Stripe.js, with 3-D
Secure where the bank asks) becomes what the tenant's renewals charge.

Stripe attaches the card but makes it nobody's default, so this family does: it re-reads the
setup intent (the event's copy is not trusted), and when it succeeded for the tenant's customer
makes its payment method the customer's invoice default, and the default of the live
subscriptions that have a card of their own (a Checkout-made one does), since a subscription's
own default beats the customer's (the self-serve port's `set_default_payment_method`). The writes carry idempotency keys made from
the setup intent's id, so a redelivered or replayed event repeats nothing. The card is then
mirrored from a fresh read; the customer.updated that our write causes finds it fresh.
Other setup_intent.* events are ignored (`not_succeeded`).
"""
from __future__ import annotations

from ..bms.port import BillingGateway
from ..models import Tenant, UnitOfWork
from .billing_gateway import as_pages
from .billing_account import sync_billing_account
from .dependencies import Clock
from .stripe_event import StripeEvent
from .stripe_family import TenantFamily


def _resync(uow: UnitOfWork, tenant: Tenant, event: StripeEvent, *, gateway: BillingGateway, now: Clock) -> None:
    assert event.object_id is not None  # see `_unusable`
    intent = as_pages(gateway).setup_intent_state(event.object_id)
    customer_id = tenant.stripe_customer_id
    if intent is None or intent.status != "succeeded" or not intent.payment_method or customer_id is None \
            or intent.customer != customer_id:
        return
    as_pages(gateway).set_default_payment_method(customer_id, intent.payment_method,
                                                 idempotency_key=f"{intent.id}:default_payment_method")
    sync_billing_account(uow, tenant, gateway=gateway, now=now)  # read after our write (our subscription rows follow by webhook)


def _unusable(event: StripeEvent) -> str | None:
    return None if event.type == "setup_intent.succeeded" and event.object_id else "not_succeeded"


SETUP_INTENT_EVENTS = TenantFamily(resync=_resync, unusable=_unusable)
