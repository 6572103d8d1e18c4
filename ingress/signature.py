"""Verifying Stripe's `Stripe-Signature` header, with the standard library only.

The header is `t=<unix seconds>,v1=<hex>[,v1=<hex>…][,v0=…]`; each `v1` is
HMAC-SHA256(secret, f"{t}.{raw body}") over `t` exactly as sent, which Stripe writes as plain ASCII
digits: any other spelling of the number (`+1`, `1_0`, non-ASCII digits, inner spaces) is refused,
never normalised first. Stripe sends one `v1` per active secret while an
endpoint's secret is being rolled, and we may hold several secrets too
(`BILLING_WEBHOOK_SECRETS`): the delivery is genuine if any of our secrets produced any of its
`v1` signatures. The timestamp is signed with the body, so checking it bounds replays: we
refuse one older than the tolerance (as Stripe's SDK does) and also one further than the
tolerance in the future (Stripe's SDK accepts those; a far-future timestamp only extends a
replay window). Comparisons are constant-time.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Iterable

# Unix seconds as ASCII digits; 18 of them reach far past any real timestamp and keep int() cheap.
_TIMESTAMP = re.compile(r"[0-9]{1,18}")


class SignatureError(Exception):
    """Missing, malformed, wrong or stale signature; the message says which, never a secret."""


def parse_header(header: str | None) -> tuple[str, list[str]]:
    """`(timestamp as sent, [v1 signatures])`; raises SignatureError when unusable."""
    if not header:
        raise SignatureError("no Stripe-Signature header")
    timestamp: str | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            if not _TIMESTAMP.fullmatch(value):
                raise SignatureError("malformed timestamp")
            timestamp = value
        elif key == "v1" and value:
            signatures.append(value.strip().lower())  # hex; anything else simply never matches
    if timestamp is None:
        raise SignatureError("no timestamp in header")
    if not signatures:
        raise SignatureError("no v1 signature in header")
    return timestamp, signatures


def compute_signature(payload: bytes, secret: str, timestamp: int | str) -> str:
    """The `v1` for `payload` signed at `timestamp` (an int, or the header's `t` text as sent)."""
    signed = str(timestamp).encode() + b"." + payload
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign_header(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """A `Stripe-Signature` header as Stripe would send it (tests, benchmarks, the emulator)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    return f"t={timestamp},v1={compute_signature(payload, secret, timestamp)}"


def verify(payload: bytes, header: str | None, secrets: Iterable[str], tolerance_s: int,
           now: float | None = None) -> int:
    """Check `header` against `payload`; return the signed timestamp or raise SignatureError."""
    signed_t, signatures = parse_header(header)
    timestamp = int(signed_t)
    now = time.time() if now is None else now
    if timestamp < now - tolerance_s:
        raise SignatureError("timestamp outside the tolerance (stale)")
    if timestamp > now + tolerance_s:
        raise SignatureError("timestamp outside the tolerance (future)")
    matched = False
    for secret in secrets:
        expected = compute_signature(payload, secret, signed_t).encode()
        for candidate in signatures:
            # No early exit: the time taken does not depend on which secret or signature matched.
            matched |= hmac.compare_digest(expected, candidate.encode("utf-8", "replace"))
    if not matched:
        raise SignatureError("no signature matches")
    return timestamp
