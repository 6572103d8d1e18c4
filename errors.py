"""Errors that decide what happens to a message: retry it, or fail it for good with a reason.

Handlers raise these; workers translate them (retry with capped backoff, or dead-letter and a
billing.command.failed with `reason`). Reasons are part of the external contract.
"""
from __future__ import annotations


class BillingSyncError(Exception):
    reason = "error"

    def __init__(self, message: str = "", *, reason: str | None = None):
        super().__init__(message or self.__class__.__name__)
        if reason:
            self.reason = reason


class TransientError(BillingSyncError):
    """Worth retrying: Stripe 429/5xx or unreachable, database unavailable, lock timeout."""

    reason = "bms_unavailable"


class StateMoved(TransientError):
    """Stripe refused a command's write because the state it was decided on changed meanwhile
    (support staff in the dashboard): the command decides again from a fresh read. Raised past
    the dispatcher's few re-decisions, it is retried like any transient failure."""


class PermanentError(BillingSyncError):
    """Retrying cannot help: the input or the state of the world must change first."""

    reason = "invalid"


class InvalidMessage(PermanentError):
    reason = "invalid"


class UnknownTenant(PermanentError):
    reason = "unknown_tenant"


class UnknownPlan(PermanentError):
    reason = "unknown_plan"


class NotFound(PermanentError):
    """Stripe has no such object (404, `resource_missing`). Reads turn it into None; a command
    meets it when something it names does not exist (a payment method: `invalid`) or when the
    object it was about to write went away meanwhile (the handler decides again)."""

    reason = "invalid"


class PaymentFailed(PermanentError):
    """A card was declined or payment is required; `reason` says which."""

    reason = "card_declined"


class ConfigurationError(Exception):
    """A setting or argument is wrong. The CLI prints the message as one line and exits 2."""

    exit_code = 2


class SafetyRefusal(Exception):
    """A safety rail refused a run that could do wide damage (wrong Stripe account, a change to
    most tenants at once, default secrets with a live key). The message says how to proceed;
    the CLI prints it as one line and exits 3."""

    exit_code = 3
