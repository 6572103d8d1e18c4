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


def test_nested_values_and_rendered_tracebacks_are_scrubbed():
    scrubbed = scrub_secrets(None, "info", {
        "event": "failed", "context": {"authorization": "Bearer x", "ids": ["whsec_abcdefgh1", "t1"]},
        "exception": "Traceback ...\nValueError: bad key sk_live_zzzzzzzz9",
    })
    assert scrubbed == {
        "event": "failed", "context": {"authorization": "[redacted]", "ids": ["[redacted]", "t1"]},
        "exception": "Traceback ...\nValueError: bad key [redacted]",
    }
