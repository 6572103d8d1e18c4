"""Stripe-Signature verification (ingress/signature.py), checked against Stripe's own SDK."""
from __future__ import annotations

import json
import time

import pytest
import stripe

from billing_sync.ingress.signature import SignatureError, compute_signature, parse_header, sign_header, verify

SECRET = "whsec_current_secret"
OLD = "whsec_previous_secret"
PAYLOAD = json.dumps({"id": "evt_1", "object": "event", "type": "customer.updated",
                      "data": {"object": {"id": "cus_1"}}}).encode()
NOW = 1_800_000_000


def test_valid_signature_returns_the_signed_timestamp():
    assert verify(PAYLOAD, sign_header(PAYLOAD, SECRET, NOW), [SECRET], 300, now=NOW) == NOW


def test_any_of_several_v1_signatures_may_match():
    other, ours = compute_signature(PAYLOAD, "whsec_other", NOW), compute_signature(PAYLOAD, SECRET, NOW)
    header = f"t={NOW},v1={other},v1={ours},v0=abc"
    assert verify(PAYLOAD, header, [SECRET], 300, now=NOW) == NOW


def test_rotated_secret_any_configured_secret_may_match():
    header = sign_header(PAYLOAD, OLD, NOW)
    assert verify(PAYLOAD, header, [SECRET, OLD], 300, now=NOW) == NOW
    with pytest.raises(SignatureError, match="no signature matches"):
        verify(PAYLOAD, header, [SECRET], 300, now=NOW)


def test_wrong_secret_or_changed_body_is_rejected():
    with pytest.raises(SignatureError):
        verify(PAYLOAD, sign_header(PAYLOAD, "whsec_wrong", NOW), [SECRET], 300, now=NOW)
    with pytest.raises(SignatureError):
        verify(PAYLOAD[:-1], sign_header(PAYLOAD, SECRET, NOW), [SECRET], 300, now=NOW)


def test_stale_and_future_timestamps_are_rejected():
    with pytest.raises(SignatureError, match="stale"):
        verify(PAYLOAD, sign_header(PAYLOAD, SECRET, NOW - 301), [SECRET], 300, now=NOW)
    with pytest.raises(SignatureError, match="future"):
        verify(PAYLOAD, sign_header(PAYLOAD, SECRET, NOW + 301), [SECRET], 300, now=NOW)
    # the edges of the window are inside it
    assert verify(PAYLOAD, sign_header(PAYLOAD, SECRET, NOW - 300), [SECRET], 300, now=NOW)
    assert verify(PAYLOAD, sign_header(PAYLOAD, SECRET, NOW + 300), [SECRET], 300, now=NOW)


@pytest.mark.parametrize("header", [
    None, "", "garbage", "t=abc,v1=00", f"t={NOW}", f"v1={'0' * 64}", f"t={NOW},v0=00",
    f"t={NOW},v1=ünïcode", f"t={NOW},v1=",
])
def test_malformed_headers_are_rejected(header):
    with pytest.raises(SignatureError):
        verify(PAYLOAD, header, [SECRET], 300, now=NOW)


def test_parse_header_collects_every_v1():
    assert parse_header("t=5, v1=AA ,v1=bb,v0=cc") == ("5", ["aa", "bb"])


# `t` as Stripe writes it is plain ASCII digits; each of these is the same number to int(), and each
# is signed here over its canonical form (the HMAC a replayer could have captured), so a verifier that
# normalises `t` before computing the HMAC accepts them.
@pytest.mark.parametrize("raw_t", [
    f"+{NOW}", f"0{NOW}", f"{NOW:_}", f" {NOW}", "".join(chr(0x0660 + int(d)) for d in str(NOW)),
    f"{NOW}.0", f"-{NOW}",
])
def test_non_canonical_timestamp_is_refused(raw_t):
    header = f"t={raw_t},v1={compute_signature(PAYLOAD, SECRET, NOW)}"
    with pytest.raises(SignatureError):
        verify(PAYLOAD, header, [SECRET], 300, now=NOW)


def test_the_hmac_is_over_the_raw_timestamp():
    """Signed over the exact `t` text: a `t` with a leading zero verifies only when signed that way."""
    raw_t = f"0{NOW}"
    header = f"t={raw_t},v1={compute_signature(PAYLOAD, SECRET, raw_t)}"
    assert verify(PAYLOAD, header, [SECRET], 300, now=NOW) == NOW


def test_agrees_with_stripe_sdk():
    """Headers signed by Stripe's SDK pass here, and ours pass Stripe's SDK."""
    now = int(time.time())
    text = PAYLOAD.decode()
    sdk_header = stripe.WebhookSignature.generate_signature_header(text, SECRET, timestamp=now)
    assert verify(PAYLOAD, sdk_header, [SECRET], 300) == now
    ours = sign_header(PAYLOAD, SECRET, now)
    assert ours == sdk_header
    event = stripe.Webhook.construct_event(PAYLOAD, ours, SECRET)
    assert event.id == "evt_1"
    # and both refuse the same wrong secret and stale timestamp
    stale = sign_header(PAYLOAD, SECRET, now - 400)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(text, stale, SECRET, 300)
    with pytest.raises(SignatureError):
        verify(PAYLOAD, stale, [SECRET], 300)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(text, ours, "whsec_wrong", 300)
    with pytest.raises(SignatureError):
        verify(PAYLOAD, ours, ["whsec_wrong"], 300)
