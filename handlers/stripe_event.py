"""The parsed Stripe event every Stripe-event handler receives, and how a worker message becomes one.

A worker message is `{"event": <verified event>, "received_at": <ISO-8601, when the ingress took
it>}`. `parse` runs the one shape check (contract/stripe_event.py) once, in the actor
(workers/actors.py), and keeps what the handlers use: the event's identity, the references of its
object, and when it arrived. The handlers get the parsed event in `StripeEventReceived`, never the
broker's dict: they re-read from Stripe what they apply.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta, timezone

from ..config.settings import Settings
from ..contract.stripe_event import EventProblem, StripeEventFacts, read_event
from ..errors import InvalidMessage
from .dependencies import Clock


@dataclass(frozen=True)
class StripeEvent(StripeEventFacts):
    received_at: datetime
    # A copy read from Stripe at or after this moment surely reflects the event:
    # `received_at` plus the allowed clock skew (see `fresh`).
    fresh_after: datetime

    def fresh(self, synced_at: datetime | None) -> bool:
        """True when our copy was read from Stripe after this event reached us: the change the
        event announces is already in it, so reading again would add nothing.

        `synced_at` is stamped *before* the read began (handlers/mirror.py), by a worker's clock;
        `received_at` by the ingress's. The margin makes the comparison safe while those clocks
        differ by less than `clock_skew_margin_s`; a larger skew can make an event look fresh
        when it is not (its change then waits for the next event or the sweep)."""
        return synced_at is not None and synced_at >= self.fresh_after


def _parse_time(value: object, default: datetime) -> datetime:
    if value is None or value == "":
        return default
    if not isinstance(value, str):
        raise TypeError("received_at is not a string")
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def parse(message: object, *, now: Clock, settings: Settings) -> StripeEvent:
    """The parsed event of a worker message; raises InvalidMessage (a permanent failure: one dead
    letter, no retry) when it is unusable.

    Events reach the worker from the ingress, the scheduler's catch-up and `dlq replay`, so the
    check runs in the worker whatever the path; the message says which field, never its value.
    """
    if not isinstance(message, dict):
        raise InvalidMessage("not a Stripe event: not a JSON object")
    try:
        facts = read_event(message.get("event"))
    except EventProblem as exc:
        raise InvalidMessage(f"not a Stripe event: {exc}") from None
    try:
        received_at = _parse_time(message.get("received_at"), now())
    except (TypeError, ValueError) as exc:
        raise InvalidMessage(f"bad received_at in {facts.id}") from exc
    return StripeEvent(**{f.name: getattr(facts, f.name) for f in fields(StripeEventFacts)},
                       received_at=received_at,
                       fresh_after=received_at + timedelta(seconds=settings.clock_skew_margin_s))
