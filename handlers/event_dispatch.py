"""Entry point for one Stripe event taken off the broker: `StripeEventReceived` on the bus.

The message carries the event as the actor parsed it (stripe_event.py:parse, the one check).
This only translates: the event's family is looked up in registry.py's table (injected by the
bus as `stripe_families`), and the pipeline (stripe_pipeline.py) runs with that family's strategy; a type nobody handles is ledgered as
"ignored" so that a redelivery is a visible duplicate.
"""
from __future__ import annotations

from collections.abc import Mapping

from ..bms.port import BillingGateway
from ..config.catalog import Catalog
from . import stripe_pipeline
from .dependencies import Clock, UowFactory
from .messages import StripeEventReceived
from .stripe_family import StripeFamily


def family_for(event_type: str, families: Mapping[str, StripeFamily]) -> StripeFamily | None:
    """The family of the longest prefix of `event_type` in `families`, if any."""
    matches = [prefix for prefix in families if event_type.startswith(prefix)]
    return families[max(matches, key=len)] if matches else None


def handle_stripe_event(message: StripeEventReceived, *, stripe_families: Mapping[str, StripeFamily],
                        uow_factory: UowFactory, gateway: BillingGateway, catalog: Catalog, now: Clock) -> str:
    """Process one event; returns the outcome: applied, duplicate or ignored."""
    event = message.event
    return stripe_pipeline.run(event, family_for(event.type, stripe_families), uow_factory=uow_factory,
                               gateway=gateway, catalog=catalog, now=now)
