"""The fleet-wide limit on real Redis: two limiters ("two machines") sharing one key never start
more than `burst + rate x window` requests together in any window, yet do reach the rate."""
from __future__ import annotations

import threading
import time

from billing_sync.bms.rate_limit import RedisRateLimiter


def hammer(limiters: list[RedisRateLimiter], threads_each: int, seconds: float) -> list[float]:
    starts: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker(limiter: RedisRateLimiter) -> None:
        while True:
            limiter.acquire()
            now = time.monotonic()
            if now >= deadline:
                return
            with lock:
                starts.append(now)

    threads = [threading.Thread(target=worker, args=(lim,)) for lim in limiters for _ in range(threads_each)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 10)
    return sorted(starts)


def test_two_machines_sharing_a_key_stay_within_the_rate(redis_url, unique_prefix):
    rate, burst, seconds = 50, 5, 2.0
    key = f"{unique_prefix}:stripe-rate"
    machines = [RedisRateLimiter(redis_url, rate, burst, key=key) for _ in range(2)]
    starts = hammer(machines, threads_each=4, seconds=seconds)

    # Over the whole run: no more than the burst plus the rate (a little slack for sleep jitter).
    assert len(starts) <= burst + rate * seconds + 2
    # And the limit is not so strict that it throttles below the rate.
    assert len(starts) >= 0.85 * rate * seconds
    # In every half-second window as well.
    window = 0.5
    for i, t0 in enumerate(starts):
        in_window = sum(1 for t in starts[i:] if t < t0 + window)
        assert in_window <= burst + rate * window + 3, (t0 - starts[0], in_window)


def test_separate_keys_do_not_share_a_budget(redis_url, unique_prefix):
    a = RedisRateLimiter(redis_url, 10, 1, key=f"{unique_prefix}:a")
    b = RedisRateLimiter(redis_url, 10, 1, key=f"{unique_prefix}:b")
    assert a.reserve() == 0
    assert b.reserve() == 0
    assert 0.05 < a.reserve() <= 0.1


def test_without_redis_the_limiter_falls_back_to_a_local_bucket():
    limiter = RedisRateLimiter("redis://127.0.0.1:1/0", 10, 2, key="unreachable")
    started = time.monotonic()
    for _ in range(4):
        limiter.acquire()  # never raises: Stripe's 429s are the backstop while Redis is away
    elapsed = time.monotonic() - started
    assert 0.15 < elapsed < 3
