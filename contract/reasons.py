"""The reasons a command may fail with: `reason` of billing.command.failed.

Part of the external contract: these and only these appear, each listed in the README's table.
A reason from anywhere else (a worker's time limit, an error nobody foresaw) is mapped here,
once, on its way into an outcome; the dead letter keeps the original.
"""
from __future__ import annotations

FAILURE_REASONS = (
    "card_declined",
    "payment_required",
    "invalid",
    "unknown_tenant",
    "unknown_plan",
    "bms_unavailable",
    "internal_error",
)

# Reasons of the worker's own (workers/middleware.failure_reason) that have a documented meaning.
_DOCUMENTED_AS = {"timeout": "bms_unavailable", "unavailable": "bms_unavailable"}


def documented_reason(reason: str | None) -> str:
    """`reason` if the contract lists it, else what it stands for (`internal_error`: a bug)."""
    if reason in FAILURE_REASONS:
        return reason
    return _DOCUMENTED_AS.get(reason or "", "internal_error")
