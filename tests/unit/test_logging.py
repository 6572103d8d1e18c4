"""The log processor that keeps secrets, card numbers and webhook bodies out of the logs."""
from __future__ import annotations

from billing_sync.config.logging import scrub_secrets


def test_secret_keys_are_redacted_and_secret_values_scrubbed_everywhere():
    scrubbed = scrub_secrets(None, "info", {
        "event": "retrying with sk_test_abcdef123",
        "api_key": "anything", "webhook_body": "{...}", "card_last4": "4242",
        "detail": "card 4242424242424242 declined", "tenant_id": "t1", "attempts": 3,
    })
    assert scrubbed == {
        "event": "retrying with [redacted]",
        "api_key": "[redacted]", "webhook_body": "[redacted]", "card_last4": "[redacted]",
        "detail": "card [redacted] declined", "tenant_id": "t1", "attempts": 3,
    }
