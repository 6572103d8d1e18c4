"""The field types of the product commands (contract/commands.py): strict text without control
characters within the bounds Stripe and our columns take, and numbers with an upper bound, so
that a valid command cannot fail on a local write after its Stripe calls. Times are the one lax
type, read from ISO-8601 text or Unix seconds, as JSON has no time type."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BeforeValidator, Field, StringConstraints

# Stripe rejects meter event values with more than 15 significant digits (400); below this bound
# a value is also exact in a double and far from the 64-bit usage counter's limit.
MAX_QUANTITY = 10**15 - 1
# Subscription item quantity: subscription_items.quantity is a 32-bit integer.
MAX_SEATS = 100_000
MAX_TRIAL_DAYS = 730  # Stripe's limit for trial_period_days


def _printable(value: object) -> object:
    # Python's own notion of printable (the space included): no control, format (zero-width,
    # bidi overrides), private-use, unassigned or surrogate code points and no separator but the
    # space, so no invisible or reordering character reaches Stripe, a log line or a key.
    if isinstance(value, str) and not value.isprintable():
        raise ValueError("must not contain control or other non-printable characters")
    return value


# Text: a strict string without control characters (checked before surrounding spaces are
# stripped, so a trailing newline is refused rather than quietly removed), within the bounds of
# its StringConstraints.
_PRINTABLE = BeforeValidator(_printable)


def _bounds(min_length: int = 1, max_length: int = 256, pattern: str | None = None) -> StringConstraints:
    return StringConstraints(min_length=min_length, max_length=max_length, strip_whitespace=True, pattern=pattern)


# Stripe idempotency keys are at most 255 characters and we append ":<step>" to the command id.
CommandId = Annotated[str, _bounds(max_length=200), _PRINTABLE]
NonEmpty = Annotated[str, _bounds(), _PRINTABLE]  # tenants.name is 256 wide, as is Stripe's customer name
# tenants.email is 320 wide
Email = Annotated[str, _bounds(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$"), _PRINTABLE]
AddressLine = Annotated[str, _bounds(min_length=0, max_length=200), _PRINTABLE]
CountryCode = Annotated[str, _bounds(min_length=2, max_length=2), _PRINTABLE]
PaymentMethodId = Annotated[str, _bounds(min_length=3, max_length=255), _PRINTABLE]
EventSource = Annotated[str, _bounds(max_length=1024), _PRINTABLE]
TypeName = Annotated[str, _bounds(max_length=128), _PRINTABLE]
# Times are the one lax type: JSON carries them as ISO-8601 text or Unix seconds.
Moment = Annotated[datetime, Field(strict=False)]
