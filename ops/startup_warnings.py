"""What an operator must know about a role's configuration, said once when the role starts: one
WARNING log line (one JSON object in production) per finding, never a refusal.

- `startup.embedded_defaults`: settings left at the embedded defaults (SQLite, the in-process
  broker, the bundled emulator's key, the public webhook secret and API token). Right for `up`
  and the demo; a role started on its own with them works alone, unseen by the rest of a fleet.
- `startup.rate_limit_local_only`: no Redis holds the fleet-wide Stripe rate limit, so each
  process allows the full BILLING_STRIPE_RATE_LIMIT and N processes may reach N times it.
- `startup.redis_not_persistent`: a Redis this role uses has neither AOF nor RDB snapshots
  (`CONFIG GET appendonly`, `CONFIG GET save`): a restart loses its queued messages, delayed
  retries, dead letters and the bridge's commands. A Redis that refuses CONFIG (managed services
  rename it) or is unreachable is not reported: its persistence is unknown, not absent.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import structlog

from ..config.settings import DEFAULT_API_TOKEN, DEFAULT_WEBHOOK_SECRET, EMBEDDED, EMULATOR_API_KEY, Settings
from ..config.urls import redact

log = structlog.get_logger(__name__)

Finding = tuple[str, dict[str, Any]]  # (event name, fields of its log line)
RedisConfig = Callable[[str], dict[str, str]]  # Redis URL -> {"appendonly": …, "save": …}


def embedded_defaults(settings: Settings) -> list[str]:
    """The BILLING_* settings at an embedded default, by name."""
    at_default = []
    if settings.database_url.startswith("sqlite"):
        at_default.append("BILLING_DATABASE_URL")
    if settings.broker_url == EMBEDDED:
        at_default.append("BILLING_BROKER_URL")
    if settings.stripe_api_key.get_secret_value() == EMULATOR_API_KEY:
        at_default.append("BILLING_STRIPE_API_KEY")
    if any(secret.get_secret_value() == DEFAULT_WEBHOOK_SECRET for secret in settings.webhook_secrets):
        at_default.append("BILLING_WEBHOOK_SECRETS")
    if any(token.get_secret_value() == DEFAULT_API_TOKEN for token in settings.api_tokens):
        at_default.append("BILLING_API_TOKENS")
    return at_default


def redis_urls(settings: Settings) -> list[str]:
    """Every Redis this deployment keeps state in: the broker, the event bus, the rate limit."""
    urls = [settings.broker_url, settings.event_bus_url, settings.redis_url or ""]
    return list(dict.fromkeys(url for url in urls if url.startswith(("redis://", "rediss://"))))


def read_redis_persistence(url: str) -> dict[str, str]:
    """`appendonly` and `save` of the Redis at `url` (raises when it cannot tell)."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        return {name: str(client.config_get(name).get(name, "")) for name in ("appendonly", "save")}
    finally:
        client.close()


def findings(role: str, settings: Settings, redis_config: RedisConfig = read_redis_persistence) -> Iterator[Finding]:
    defaults = embedded_defaults(settings)
    if defaults:
        hint = ("fine for `up` and the demo" if role in ("up", "demo") else
                "a role on embedded defaults works alone; set them to join a fleet")
        yield "startup.embedded_defaults", {"settings": defaults, "hint": hint}
    if not settings.embedded_broker and not (settings.broker_url.startswith(("redis://", "rediss://"))
                                             or settings.redis_url):
        yield "startup.rate_limit_local_only", {
            "rate_per_s": settings.stripe_rate_limit,
            "hint": "each process allows the full BILLING_STRIPE_RATE_LIMIT; set BILLING_REDIS_URL for a "
                    "fleet-wide limit"}
    for url in redis_urls(settings):
        try:
            config = redis_config(url)
        except Exception:  # CONFIG renamed or Redis down: persistence unknown, not absent
            continue
        if config.get("appendonly", "").lower() != "yes" and not config.get("save", "").strip():
            yield "startup.redis_not_persistent", {
                "redis": redact(url), "appendonly": config.get("appendonly"), "save": config.get("save"),
                "hint": "a restart loses queued messages, retries and dead letters; enable AOF "
                        "(appendonly yes) or RDB snapshots (save)"}


def warn_at_startup(role: str, settings: Settings, redis_config: RedisConfig = read_redis_persistence) -> list[str]:
    """Log each finding for `role` once, as a WARNING line; returns their event names."""
    said = []
    for event, fields in findings(role, settings, redis_config):
        log.warning(event, role=role, **fields)
        said.append(event)
    return said
