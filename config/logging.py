"""structlog set-up: JSON lines in production, readable console output in development.

A processor scrubs anything that looks like a secret, a card number or a webhook body before
it is rendered, so a careless `log.info(..., body=raw)` cannot leak one.
"""
from __future__ import annotations

import logging
import re
import sys

import structlog

_SECRET_KEYS = re.compile(r"(secret|token|api_key|password|authorization|signature|card|body|payload)", re.I)
_SECRET_VALUES = re.compile(r"(sk|rk|whsec)_(live|test)?_?[A-Za-z0-9]{6,}|\b\d{13,19}\b")


def _scrub(value: object) -> object:
    """Strings scrubbed; dicts and lists scrubbed all the way down (a logged dict is no way out)."""
    if isinstance(value, str):
        return _SECRET_VALUES.sub("[redacted]", value)
    if isinstance(value, dict):
        return {key: "[redacted]" if isinstance(key, str) and _SECRET_KEYS.search(key) else _scrub(item)
                for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(item) for item in value]
    return value


def scrub_secrets(_logger, _name, event_dict: dict) -> dict:
    return _scrub(event_dict)


def configure_logging(level: str = "INFO", fmt: str = "auto") -> None:
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    renderer = structlog.dev.ConsoleRenderer() if fmt == "console" else structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            scrub_secrets,  # after format_exc_info, so tracebacks are scrubbed too
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # Libraries that log through stdlib (dramatiq, kombu, uvicorn) go to stderr at WARNING+.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    # The Stripe SDK logs every request URL at INFO (query strings included); Dramatiq's CLI turns
    # the root logger up to INFO, so quiet it explicitly.
    logging.getLogger("stripe").setLevel(logging.WARNING)
