"""What happens to a message that fails: the retry policy, the dead-letter table, metrics.

- `retry_when`: only transient failures (Stripe 429/5xx or unreachable, the database or Redis
  unreachable, a lock timeout, a handler over its time limit) are retried, with Dramatiq's
  capped exponential backoff; a `PermanentError` — or a bug — fails at once, because retrying
  cannot change the outcome.
- `DeadLetters`: a message that failed for good (permanent, or retries exhausted) goes to its
  actor's `on_dead_letter` option, which writes it to the `dead_letters` table (where
  `billing-sync dlq` lists, replays and purges it) — for `apply_command` together with the
  product's one `billing.command.failed`. The middleware knows no actor by name: what it logs
  about a message comes from the actor's `message_fields` option.
- `ActorMetrics`: processed / retried / failed counts and durations per actor.
- One log line per failed attempt, from `DeadLetters`: `message.retrying` (WARNING, with the
  reason) when Retries will try again, `message.dead_lettered` when it gave up (WARNING; ERROR
  with the traceback as a field when the failure is a bug, `internal_error`). Dramatiq's own
  lines about the same failure (an ERROR with a multi-line traceback on every attempt, then
  "Retrying message…" or "Retries exceeded…") are dropped by `install_log_redaction`.
- Dramatiq prints a message as `actor(args…)` in its log lines, which would put a whole
  webhook body in the logs: `install_log_redaction` shortens those to `actor#message_id`.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass

import redis
import structlog
from dramatiq.broker import MessageProxy
from dramatiq.message import Message
from dramatiq.middleware import Middleware, TimeLimitExceeded
from sqlalchemy.exc import DBAPIError, OperationalError

from ..config import metrics
from ..config.logging import redact_secrets
from ..errors import BillingSyncError, PermanentError, TransientError

log = structlog.get_logger(__name__)

# -- the retry policy -----------------------------------------------------------------------


def is_transient(exc: BaseException) -> bool:
    """Could the same message succeed later, unchanged?"""
    if isinstance(exc, PermanentError):
        return False
    if isinstance(exc, (TransientError, TimeLimitExceeded, ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, OperationalError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated):
        return True  # database down, failover, deadlock, lock or statement timeout
    return isinstance(exc, (redis.ConnectionError, redis.TimeoutError))  # e.g. the rate limiter's Redis


def make_retry_when(max_retries: int):
    """Dramatiq's `retry_when(retries_so_far, exception)`; it overrides `max_retries`, so it
    carries the cap itself."""

    def retry_when(retries: int, exc: BaseException) -> bool:
        return retries < max_retries and is_transient(exc)

    return retry_when


def failure_reason(exc: BaseException) -> str:
    """A machine-readable reason (the `reason` of billing.command.failed and of a dead letter)."""
    if isinstance(exc, BillingSyncError):
        return exc.reason
    if isinstance(exc, TimeLimitExceeded):
        return "timeout"
    if is_transient(exc):
        return "unavailable"
    return "internal_error"


def failure_detail(exc: BaseException, attempts: int = 1) -> str:
    """What went wrong, for a dead letter: Stripe keys, webhook secrets, bearer tokens and URL
    passwords never reach one."""
    text = f"{type(exc).__name__}: {exc}"
    if attempts > 1:
        text = f"gave up after {attempts} attempts; {text}"
    return redact_secrets(text)[:2000]


# -- middleware ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FailedForGood:
    """What an actor's `on_dead_letter` hook gets: a message that will not be tried again."""

    actor: str
    message_id: str | None  # the business id (Stripe event id, command id, tenant id), or None
    args: list
    body: str  # `{"args": [...], "kwargs": {...}}`, what `dlq replay` sends again
    reason: str
    detail: str


def _no_fields(_args) -> tuple[None, None]:
    return None, None


class DeadLetters(Middleware):
    """Hands messages that failed for good to their actor's `on_dead_letter(FailedForGood)`.

    Must run after `Retries` has decided (Dramatiq runs `after_*` hooks in reverse order, so
    this sits *before* Retries in the list). Actor options it reads:
    - `message_fields(args) -> (business id, type)`, for the log lines and the dead letter;
    - `on_dead_letter(failure)`: records the failure. Without one the failure is only logged
      (with a shared broker it still ends in the broker's own dead-letter queue).
    """

    actor_options = {"message_fields", "on_dead_letter"}

    def after_process_message(self, broker, message, *, result=None, exception=None):
        if exception is None:
            return
        actor = message.actor_name
        options = broker.get_actor(actor).options
        args = list(message.args)
        key, message_type = options.get("message_fields", _no_fields)(args)
        attempts = message.options.get("retries", 1)  # Retries counts failed attempts
        reason = failure_reason(exception)
        fields = dict(actor=actor, message_id=key, message_type=message_type, reason=reason,
                      attempts=attempts, error=type(exception).__name__)
        if not message.failed:  # Retries will try again: one line, no traceback
            log.warning("message.retrying", **fields, detail=failure_detail(exception)[:300])
            return
        detail = failure_detail(exception, attempts)
        if reason == "internal_error":  # a bug: its traceback, as a field of this one line
            log.error("message.dead_lettered", **fields, exc_info=exception)
        else:
            log.warning("message.dead_lettered", **fields, detail=detail[:300])
        on_dead_letter = options.get("on_dead_letter")
        if on_dead_letter is None:
            return
        body = json.dumps({"args": args, "kwargs": message.kwargs or {}}, separators=(",", ":"))
        on_dead_letter(FailedForGood(actor=actor, message_id=key, args=args, body=body, reason=reason,
                                     detail=detail))


class ActorMetrics(Middleware):
    """Prometheus counts and durations per actor; sits before Retries, like DeadLetters."""

    def __init__(self) -> None:
        self._started: dict[str, float] = {}
        self._lock = threading.Lock()

    def before_process_message(self, broker, message):
        with self._lock:
            self._started[message.message_id] = time.monotonic()

    def after_process_message(self, broker, message, *, result=None, exception=None):
        with self._lock:
            started = self._started.pop(message.message_id, None)
        actor = message.actor_name
        if started is not None:
            metrics.ACTOR_SECONDS.labels(actor).observe(time.monotonic() - started)
        if exception is None:
            metrics.ACTOR_PROCESSED.labels(actor).inc()
        elif message.failed:
            metrics.ACTOR_FAILED.labels(actor, failure_reason(exception)).inc()
        else:
            metrics.ACTOR_RETRIED.labels(actor).inc()

    def after_skip_message(self, broker, message):
        with self._lock:
            self._started.pop(message.message_id, None)


# -- log redaction ------------------------------------------------------------------------------

_redaction_installed = False
_redaction_lock = threading.Lock()


def _short(value):
    if isinstance(value, (Message, MessageProxy)):
        return f"{value.actor_name}#{value.message_id}"
    return value


# Dramatiq's lines about a failed attempt, which `DeadLetters` replaces with one line of its own.
_SAID_BY_DEAD_LETTERS = {
    "dramatiq.worker.WorkerThread": ("Failed to process message",),
    "dramatiq.middleware.retries.Retries": ("Retrying message", "Retries exceeded for message"),
}


def _not_said_by_dead_letters(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith(_SAID_BY_DEAD_LETTERS.get(record.name, ()))


def install_log_redaction() -> None:
    """Make Dramatiq's own log lines name messages by actor and id, never by their arguments,
    and drop its lines about failed attempts (`DeadLetters` logs each attempt once)."""
    global _redaction_installed
    with _redaction_lock:
        if _redaction_installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args, **kwargs):
            record = previous(*args, **kwargs)
            # `logging.makeLogRecord` (structlog's ProcessorFormatter uses it) passes name None.
            if (record.name or "").startswith("dramatiq") and isinstance(record.args, tuple):
                record.args = tuple(_short(arg) for arg in record.args)
            return record

        logging.setLogRecordFactory(factory)
        for name in _SAID_BY_DEAD_LETTERS:
            logging.getLogger(name).addFilter(_not_said_by_dead_letters)
        _redaction_installed = True
