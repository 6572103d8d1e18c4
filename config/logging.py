"""Logging set-up: one JSON object per line in production, readable console output in development.

Everything a process writes goes through one handler on the root logger, whose formatter is
structlog's `ProcessorFormatter`: our own structlog loggers and every library's stdlib logger
(Dramatiq and its worker processes, uvicorn's error and access loggers, kombu, alembic,
SQLAlchemy, the Stripe SDK), `warnings.warn` and uncaught exceptions (in any thread) pass the
same processors — the scrubber included — and the same renderer. An exception becomes an
`exception` field of its line, never lines of its own.

The scrubber (`scrub_secrets`) is the last line of defence, not the first: it redacts values
under secret-looking keys (`token`, `email`, `body`, …), Stripe keys, webhook secrets, bearer
tokens, URL passwords, e-mail addresses and card numbers (13–19 digits, also grouped by spaces
or dashes, that pass the Luhn check) in every string, nested values and rendered tracebacks
included. It cannot recognise a name or an address: so no log call passes a command, webhook
body or data dict, and SQL parameters are hidden at the engine (`models/db.py`).

Library loggers log at WARNING and above (some, like kombu's at DEBUG, would print message
bodies; uvicorn sets its own to `BILLING_LOG_LEVEL`); our own (`billing_sync…`) at
`BILLING_LOG_LEVEL`. If a record cannot be formatted, that too is one JSON line
(`logging.format_failed`), not logging's multi-line report.
"""
from __future__ import annotations

import json
import logging
import re
import sys
import threading
from collections.abc import Mapping, MutableMapping
from datetime import UTC, datetime
from typing import Any

import structlog
from structlog.typing import Processor

OUR_LOGGERS = ("billing_sync", "billing_sync_emulator")

# A cached logger keeps the processors of the configuration it was first used under. Tests
# configure logging many times in one process and capture it with structlog's `capture_logs`,
# which reaches only loggers not cached against an older configuration: tests/conftest.py turns
# caching off. Production processes configure once, so they keep the faster cached loggers.
CACHE_LOGGERS = True

_SECRET_KEYS = re.compile(r"(secret|token|api_key|password|authorization|signature|card|body|payload|e_?mail)",
                          re.I)
# Stripe keys and webhook secrets, bearer tokens, and the password of a URL (`scheme://user:pw@`).
SECRETS = re.compile(r"\b(?:sk|rk|pk|whsec)_[A-Za-z0-9_]{6,}|(?<=://)[^/@\s:]*:[^/@\s]*(?=@)|Bearer\s+\S+")
# E-mail addresses as people write them (the command schema accepts any `x@y`, so no TLD needed),
# also URL-encoded (`user%40example.com`, as in a logged request path). `?`, `=` and `&` are left
# out of the local part, though RFC 5322 allows them, so that a query string stays readable.
_EMAILS = re.compile(r"[\w.!#$%'*+^`{|}~-]+(?:@|%40)[\w-]+(?:\.[\w-]+)*")
# 13–19 digits, optionally grouped by up to two spaces, dashes or dots ("4242 4242 4242 4242").
_CARD_SEPARATORS = "[ .-]"
_CARD_CANDIDATES = re.compile(rf"(?<![\w-])\d(?:{_CARD_SEPARATORS}{{0,2}}\d){{12,18}}(?![\w-])")
REDACTED = "[redacted]"


def _luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _redact_card(match: re.Match) -> str:
    digits = re.sub(_CARD_SEPARATORS, "", match.group())
    return REDACTED if _luhn_valid(digits) else match.group()


def redact_secrets(text: str) -> str:
    """`text` without keys, webhook secrets, bearer tokens and URL passwords (for stored details
    such as a dead letter's, where e-mail addresses may stay)."""
    return SECRETS.sub(REDACTED, text)


def scrub_text(text: str) -> str:
    """`text` fit for a log line: secrets, e-mail addresses and card numbers redacted."""
    text = _EMAILS.sub(REDACTED, redact_secrets(text))
    return _CARD_CANDIDATES.sub(_redact_card, text)


def _scrub(value: object) -> object:
    """Strings scrubbed; dicts and lists scrubbed all the way down (a logged dict is no way out).
    Bytes are written as scrubbed text: a raw value must not carry an address past the scrubber."""
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", "replace")
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return _scrub_mapping(value)
    if isinstance(value, (list, tuple)):
        return [_scrub(item) for item in value]
    return value


def _scrub_mapping(value: Mapping[Any, Any]) -> dict[Any, Any]:
    return {key: REDACTED if isinstance(key, str) and _SECRET_KEYS.search(key) else _scrub(item)
            for key, item in value.items()}


def scrub_secrets(_logger: object, _name: str, event_dict: MutableMapping[str, Any]) -> dict[str, Any]:
    return _scrub_mapping(event_dict)


class _JsonSafeHandler(logging.StreamHandler):
    """A StreamHandler whose own failures (a record that cannot be formatted) are one JSON line
    too, instead of logging's multi-line "--- Logging error ---" report."""

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        line = json.dumps({"event": "logging.format_failed", "level": "error", "logger": str(record.name),
                           "error": type(error).__name__ if error else None,
                           "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z")})
        try:
            self.stream.write(line + self.terminator)
            self.flush()
        except Exception:  # the stream itself is gone: nothing left to tell
            pass


def resolve_format(fmt: str, stream=None) -> str:
    """`json` or `console`: `auto` is console on a terminal (`stream`, default sys.stderr)."""
    if fmt != "auto":
        return fmt
    isatty = getattr(stream if stream is not None else sys.stderr, "isatty", None)
    return "console" if isatty is not None and isatty() else "json"


def configure_logging(level: str = "INFO", fmt: str = "auto", stream=None) -> None:
    """(Re)configure this process's logging; safe to call again, e.g. in a forked child whose
    `sys.stderr` is now a pipe (Dramatiq's worker processes), since it replaces the root handler.

    `stream` defaults to the current `sys.stderr`.
    """
    stream = stream if stream is not None else sys.stderr
    fmt = resolve_format(fmt, stream)
    renderer = structlog.dev.ConsoleRenderer() if fmt == "console" else structlog.processors.JSONRenderer()
    numeric_level = logging.getLevelName(level.upper())
    if not isinstance(numeric_level, int):
        numeric_level = logging.INFO
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        timestamper,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=CACHE_LOGGERS,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,  # stdlib records: level, logger name, time, as for our own
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,  # a traceback becomes the `exception` field
            scrub_secrets,  # after format_exc_info, so tracebacks are scrubbed too
            renderer,
        ],
    )
    handler = _JsonSafeHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(max(numeric_level, logging.WARNING))  # libraries
    for name in OUR_LOGGERS:
        logging.getLogger(name).setLevel(numeric_level)
    # The Stripe SDK logs every request at INFO/DEBUG (query strings, bodies): never below WARNING.
    logging.getLogger("stripe").setLevel(max(numeric_level, logging.WARNING))
    logging.captureWarnings(True)  # warnings.warn → the py.warnings logger → one JSON line

    log = structlog.get_logger("billing_sync")

    def thread_excepthook(args) -> None:
        if args.exc_type is SystemExit:
            return
        log.error("uncaught_exception", thread=args.thread.name if args.thread else None,
                  exc_info=(args.exc_type, args.exc_value, args.exc_traceback))

    def excepthook(exc_type, exc_value, exc_traceback) -> None:
        log.error("uncaught_exception", exc_info=(exc_type, exc_value, exc_traceback))

    threading.excepthook = thread_excepthook
    sys.excepthook = excepthook
