"""Entry point for one Stripe event taken off the broker.

The worker's `process_stripe_event` actor calls `handle_stripe_event(message, ctx)` with
`message = {"event": <verified event>, "received_at": <ISO-8601, when the ingress took it>}`.
This only translates: the message is parsed once (stripe_event.py), its family looked up in
registry.py's table, and the pipeline (stripe_pipeline.py) runs with that family's strategy; a
type nobody handles is ledgered as "ignored" so that a redelivery is a visible duplicate.
"""
from __future__ import annotations

from . import registry, stripe_pipeline
from .stripe_event import parse


def handle_stripe_event(message: dict, ctx) -> str:
    """Process one event; returns the outcome: applied, duplicate or ignored."""
    event = parse(message, ctx)
    return stripe_pipeline.run(event, registry.stripe_family_for(event.type), ctx)
