"""The reasons a command may fail with: `reason` of billing.command.failed.

Part of the external contract: these and only these appear, each listed in the README's table
(tests/unit/test_commands.py checks the table against this enum). A reason from anywhere else (a
worker's time limit, an error nobody foresaw) is mapped here, once, on its way into an outcome;
the dead letter keeps the original.
"""
from __future__ import annotations

from enum import StrEnum


class FailureReason(StrEnum):
    CARD_DECLINED = "card_declined"
    PAYMENT_REQUIRED = "payment_required"
    INVALID = "invalid"
    UNKNOWN_TENANT = "unknown_tenant"
    UNKNOWN_PLAN = "unknown_plan"
    BMS_UNAVAILABLE = "bms_unavailable"
    INTERNAL_ERROR = "internal_error"


FAILURE_REASONS = tuple(reason.value for reason in FailureReason)

# Reasons of the worker's own (workers/middleware.failure_reason) that have a documented meaning.
_DOCUMENTED_AS = {"timeout": FailureReason.BMS_UNAVAILABLE, "unavailable": FailureReason.BMS_UNAVAILABLE}


def documented_reason(reason: str | None) -> FailureReason:
    """`reason` if the contract lists it, else what it stands for (`internal_error`: a bug)."""
    if reason in FAILURE_REASONS:
        return FailureReason(reason)
    return _DOCUMENTED_AS.get(reason or "", FailureReason.INTERNAL_ERROR)
