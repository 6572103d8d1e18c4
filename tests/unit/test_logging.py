"""The logging pipeline: the scrubber that keeps secrets, e-mail addresses, card numbers and bodies
out of the logs, and the one JSON line per record that every emitter in a process gets."""
from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap

import pytest

from billing_sync.config.logging import resolve_format, scrub_secrets

R = "[redacted]"

# (what is logged, what must be written); one line per case.
SCRUB_CASES = [
    ({"event": "retrying with sk_test_abcdef123"}, {"event": f"retrying with {R}"}),
    ({"event": "key rk_live_abcdef123456 rotated"}, {"event": f"key {R} rotated"}),
    ({"event": "secret whsec_e2e_secret"}, {"event": f"secret {R}"}),
    ({"event": "header Bearer abc.def"}, {"event": f"header {R}"}),
    ({"bus": "amqp://guest:s3cret@rabbit:5672//"}, {"bus": f"amqp://{R}@rabbit:5672//"}),
    ({"api_key": "anything", "webhook_body": "{...}", "card_last4": "4242", "Authorization": "x"},
     {"api_key": R, "webhook_body": R, "card_last4": R, "Authorization": R}),
    ({"email": "not even an address", "customer_email": "x"}, {"email": R, "customer_email": R}),
    ({"detail": "card 4242424242424242 declined"}, {"detail": f"card {R} declined"}),
    ({"detail": "card 4242 4242 4242 4242 declined"}, {"detail": f"card {R} declined"}),
    ({"detail": "card 4000-0000-0000-0002 declined"}, {"detail": f"card {R} declined"}),
    ({"detail": "amex 3782 822463 10005"}, {"detail": f"amex {R}"}),
    ({"detail": "customer ada.lovelace+billing@example.com exists"}, {"detail": f"customer {R} exists"}),
    ({"detail": "to Zoë.Ünal@bücher.example"}, {"detail": f"to {R}"}),
    ({"detail": "no TLD: ops@localhost"}, {"detail": f"no TLD: {R}"}),
    ({"url": "/v1/customers?email=user%40example.com"}, {"url": f"/v1/customers?email={R}"}),
    ({"detail": "card 4242  4242 4242 4242 declined"}, {"detail": f"card {R} declined"}),
    ({"detail": "card 4242.4242.4242.4242 declined"}, {"detail": f"card {R} declined"}),
    ({"raw": b"from a@b.example"}, {"raw": f"from {R}"}),
    ({"context": {"authorization": "Bearer x", "ids": ["whsec_abcdefgh1", "t1"]}},
     {"context": {"authorization": R, "ids": [R, "t1"]}}),
    ({"exception": "Traceback ...\nValueError: bad key sk_live_zzzzzzzz9 for a@b.example"},
     {"exception": f"Traceback ...\nValueError: bad key {R} for {R}"}),
    # Left alone: ids, counts, timestamps, UUIDs, numbers that fail the Luhn check.
    ({"tenant_id": "t1", "attempts": 3, "ok": True, "ms": 12.5}, {"tenant_id": "t1", "attempts": 3, "ok": True,
                                                                 "ms": 12.5}),
    ({"message_id": "12345678-1234-5678-1234-567812345678"}, {"message_id": "12345678-1234-5678-1234-567812345678"}),
    ({"event": "at 2026-12-01T11:07:50.331Z, 1764587270332 ms"}, {"event": "at 2026-12-01T11:07:50.331Z, "
                                                                            "1764587270332 ms"}),
    ({"event": "decorator @actor and @ alone"}, {"event": "decorator @actor and @ alone"}),
]


@pytest.mark.parametrize("logged, written", SCRUB_CASES)
def test_scrubber(logged, written):
    assert scrub_secrets(None, "info", logged) == written


# Every kind of emitter in a process, configured as production is (BILLING_LOG_FORMAT=json).
# (name, Python statements run after configure_logging, fields the line must have).
EMITTERS = [
    ("structlog", "structlog.get_logger('billing_sync.x').info('ours', customer='ada@example.com')",
     {"event": "ours", "level": "info", "customer": R}),
    ("stdlib library", "logging.getLogger('kombu').warning('lost %s', 'ada@example.com')",
     {"event": f"lost {R}", "level": "warning", "logger": "kombu"}),
    ("library below WARNING", "logging.getLogger('kombu').info('chatty'); logging.getLogger('kombu').debug('x')",
     None),
    ("uvicorn", "logging.getLogger('uvicorn.error').error('Exception in ASGI application')",
     {"event": "Exception in ASGI application", "level": "error", "logger": "uvicorn.error"}),
    ("library traceback",
     "try:\n    raise ValueError('bad card 4242 4242 4242 4242')\n"
     "except ValueError:\n    logging.getLogger('dramatiq.worker').exception('failed')",
     {"event": "failed", "level": "error", "logger": "dramatiq.worker"}),
    ("warnings.warn", "warnings.warn('deprecated thing')", {"level": "warning", "logger": "py.warnings"}),
    ("thread", "t = threading.Thread(target=lambda: 1 / 0, name='boom'); t.start(); t.join()",
     {"event": "uncaught_exception", "level": "error", "thread": "boom"}),
    ("unformattable record", "logging.getLogger('kombu').warning('%d', 'not a number')",
     {"event": "logging.format_failed", "level": "error", "logger": "kombu"}),
    ("uncaught in main", "raise RuntimeError('crash for ada@example.com')",
     {"event": "uncaught_exception", "level": "error"}),
]


def test_every_emitter_writes_one_scrubbed_json_line_each():
    """Runs in a child process: configure_logging replaces the process's handlers and hooks."""
    body = "\n".join(f"print({name!r}, file=sys.stderr, flush=True)\n{code}" for name, code, _ in EMITTERS)
    script = "import logging, sys, threading, warnings\nimport structlog\n" \
             "from billing_sync.config.logging import configure_logging\n" \
             "configure_logging('INFO', 'json')\n" + body
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1  # the uncaught exception at the end

    names = {name for name, _, _ in EMITTERS}
    by_emitter: dict[str, list[str]] = {}
    current = None
    for line in done.stderr.splitlines():
        if line in names:
            current = line
            by_emitter[current] = []
        else:
            by_emitter[current].append(line)
    for name, _, expected in EMITTERS:
        lines = by_emitter[name]
        if expected is None:
            assert lines == [], name
            continue
        assert len(lines) == 1, (name, lines)
        record = json.loads(lines[0])
        assert expected.items() <= record.items(), (name, record)
        assert "timestamp" in record and "ada@example.com" not in lines[0] and "4242 4242" not in lines[0], name
    assert "ZeroDivisionError" in json.loads(by_emitter["thread"][0])["exception"]
    assert "ValueError: bad card [redacted]" in json.loads(by_emitter["library traceback"][0])["exception"]
    assert "RuntimeError: crash for [redacted]" in json.loads(by_emitter["uncaught in main"][0])["exception"]


def test_auto_format_is_json_when_not_on_a_terminal():
    script = textwrap.dedent("""
        import structlog
        from billing_sync.config.logging import configure_logging
        configure_logging('INFO', 'auto')
        structlog.get_logger('billing_sync.x').info('hello')
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert json.loads(done.stderr)["event"] == "hello"


def test_auto_is_console_on_a_terminal_only():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    assert resolve_format("auto", Terminal()) == "console"
    assert resolve_format("auto", io.StringIO()) == "json"
    assert resolve_format("json", Terminal()) == "json" and resolve_format("console", io.StringIO()) == "console"
