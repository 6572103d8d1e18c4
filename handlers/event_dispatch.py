"""Entry point for one Stripe event taken off the broker.

The worker's `process_stripe_event` actor calls `handle_stripe_event(message, ctx)` with
`message = {"event": <verified event>, "received_at": <ISO-8601, when the ingress took it>}`.
Routing is registry.py's table; a type nobody handles is ledgered as "ignored" so that it
is visibly accounted for and a redelivery is a duplicate.
"""
from __future__ import annotations

from . import registry
from .stripe_event import parse, record_ignored


def handle_stripe_event(message: dict, ctx) -> str:
    """Process one event; returns the outcome: applied, duplicate or ignored."""
    event = parse(message, ctx)
    handler = registry.stripe_handler_for(event.type)
    if handler is None:
        return record_ignored(ctx, event, "unhandled_type")
    return handler(message, ctx)
