"""The fleet-wide Stripe request rate limit that `StripeGateway` takes before every call.

Stripe allows 100 requests/s in live mode and 25 in test mode, per account: a limit for the
whole fleet, not for one worker. So the bucket lives in Redis, where every worker thread on
every machine draws from it; one Lua script decides atomically and uses the Redis server's clock,
so machines with skewed clocks still share one schedule.

The algorithm is GCRA (a token bucket written as one timestamp, the "theoretical arrival time"
`tat` of the next request). Each request reserves the next free slot, `1/rate` after the previous
one, and sleeps until it comes; up to `burst` requests may go at once after a quiet spell. Over
any window of W seconds at most `burst + W * rate` requests start. Reserving (rather than polling
"may I go now?") costs one Redis round trip per request and serves waiters in arrival order.

Embedded mode (one process) uses the same algorithm in memory. Stripe 429s that still happen
(another client on the same account, a limit lower than configured) are mapped to
`TransientError` by the gateway and retried with backoff by the worker.
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

import structlog

from .gateway import RateLimiter

log = structlog.get_logger(__name__)


def default_burst(rate_per_s: float) -> int:
    """A fifth of a second's worth: smooth enough that any one-second window stays within
    1.2 x rate (24/s at the default 20/s, under test mode's 25), bursty enough not to add
    latency to the odd single call."""
    return max(1, math.ceil(rate_per_s / 5))


class LocalRateLimiter:
    """GCRA in one process, thread-safe. `clock` and `sleep` are injectable for tests."""

    def __init__(self, rate_per_s: float, burst: int = 1, *,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        if rate_per_s <= 0:
            raise ValueError("rate_per_s must be positive")
        self.interval = 1.0 / rate_per_s
        self.capacity = max(1, burst) * self.interval  # how far ahead of now the schedule may run
        self._clock = clock
        self._sleep = sleep
        self._tat = 0.0  # when the schedule is next free
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Take the next slot; return how long to wait for it (0 = go now)."""
        with self._lock:
            now = self._clock()
            tat = max(self._tat, now) + self.interval
            self._tat = tat
            wait = tat - now - self.capacity
            return wait if wait > 1e-9 else 0.0  # float noise is not a wait

    def acquire(self) -> None:
        wait = self.reserve()
        if wait > 0:
            self._sleep(wait)


# KEYS[1]: the bucket. ARGV[1]: interval (µs per request), ARGV[2]: capacity (µs, burst x interval).
# Returns the wait in µs before the reserved slot (0 = go now). Server time, so no clock skew.
_GCRA_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
tat = tat + interval
local ttl_ms = math.ceil((tat - now) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', ttl_ms)
local wait = tat - now - capacity
if wait < 0 then wait = 0 end
return wait
"""


class RedisRateLimiter:
    """GCRA shared through one Redis key by every process that uses the same `key`.

    If Redis cannot be reached the limiter falls back to a local bucket at the same rate and
    logs a warning, rather than stopping all Stripe traffic: Stripe's own 429s (retried by the
    workers) are the backstop while Redis is away.
    """

    def __init__(self, redis_url: str, rate_per_s: float, burst: int = 1, key: str = "billing-sync:stripe-rate",
                 *, client=None):
        import redis

        if rate_per_s <= 0:
            raise ValueError("rate_per_s must be positive")
        self.key = key
        self.interval_us = int(1_000_000 / rate_per_s)
        self.capacity_us = max(1, burst) * self.interval_us
        self.client = client or redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
        self._script = self.client.register_script(_GCRA_RESERVE)
        self._fallback = LocalRateLimiter(rate_per_s, burst)
        self._degraded = False

    def reserve(self) -> float:
        """Take the next fleet-wide slot; return seconds to wait for it."""
        import redis

        try:
            wait_us = int(self._script(keys=[self.key], args=[self.interval_us, self.capacity_us]))
        except redis.RedisError as exc:
            if not self._degraded:
                log.warning("rate_limit.redis_unavailable", key=self.key, error=type(exc).__name__)
                self._degraded = True
            return self._fallback.reserve()
        if self._degraded:
            log.info("rate_limit.redis_back", key=self.key)
            self._degraded = False
        return wait_us / 1_000_000

    def acquire(self) -> None:
        wait = self.reserve()
        if wait > 0:
            time.sleep(wait)


def make_rate_limiter(settings) -> RateLimiter:
    """The limiter for this process: Redis-shared when the fleet has a Redis, else local.

    A Redis broker lends its Redis; with RabbitMQ, `BILLING_REDIS_URL` names one. Without any,
    each process limits itself to the full rate, so N processes may reach N x the limit (and
    get 429s, which are retried) — hence the start-up warning `startup.rate_limit_local_only`.
    """
    return _fleet_limiter(settings, settings.stripe_rate_limit, "stripe-rate")


def make_meter_rate_limiter(settings) -> RateLimiter:
    """Metering's own share of the Stripe budget (`BILLING_STRIPE_METER_RATE_LIMIT`), a bucket of
    its own beside the sync's, shared the same way. Live mode gives the meter event endpoint its
    own limit; in test mode it counts toward the account's basic limit, so keep both shares
    together under it."""
    return _fleet_limiter(settings, settings.stripe_meter_rate_limit, "stripe-meter-rate")


def _fleet_limiter(settings, rate: float, name: str) -> RateLimiter:
    burst = default_burst(rate)
    redis_url = _shared_redis_url(settings)
    if redis_url:
        return RedisRateLimiter(redis_url, rate, burst, key=f"{settings.queue_prefix}:{name}")
    return LocalRateLimiter(rate, burst)  # each role says so once at start-up: startup.rate_limit_local_only


def _shared_redis_url(settings) -> str | None:
    if settings.broker_url.startswith(("redis://", "rediss://")):
        return settings.broker_url
    return settings.redis_url or None
