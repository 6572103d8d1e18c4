"""The local GCRA bucket on a fake clock, and how the limiter is chosen from settings."""
from __future__ import annotations

import pytest

from billing_sync.bms.rate_limit import LocalRateLimiter, RedisRateLimiter, default_burst, make_rate_limiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def limiter(rate: float, burst: int) -> tuple[LocalRateLimiter, FakeClock]:
    clock = FakeClock()
    return LocalRateLimiter(rate, burst, clock=clock, sleep=clock.sleep), clock


def test_a_burst_goes_at_once_then_requests_are_spaced_by_the_rate():
    bucket, clock = limiter(rate=10, burst=3)
    for _ in range(3):
        bucket.acquire()
    assert clock.slept == []  # the burst
    bucket.acquire()
    bucket.acquire()
    assert clock.slept == pytest.approx([0.1, 0.1])


def test_a_quiet_spell_refills_the_burst_but_never_beyond_it():
    bucket, clock = limiter(rate=10, burst=3)
    for _ in range(5):
        bucket.acquire()
    clock.now += 60  # a minute of silence does not bank 600 requests
    clock.slept.clear()
    for _ in range(4):
        bucket.acquire()
    assert clock.slept == pytest.approx([0.1])


def test_starts_in_any_window_stay_within_burst_plus_rate_times_window():
    rate, burst, window = 20, 4, 2.0
    bucket, clock = limiter(rate, burst)
    starts = []
    start = clock.now
    while clock.now - start < 10:
        bucket.acquire()
        starts.append(clock.now)
    for t0 in starts:
        in_window = sum(1 for t in starts if t0 <= t < t0 + window)
        assert in_window <= burst + rate * window
    assert len(starts) >= rate * 10  # and it does not throttle below the rate


def test_reserve_reports_the_wait_without_sleeping():
    bucket, clock = limiter(rate=2, burst=1)
    assert bucket.reserve() == 0
    assert bucket.reserve() == pytest.approx(0.5)
    assert bucket.reserve() == pytest.approx(1.0)  # waiters queue up behind each other
    assert clock.slept == []


def test_rate_must_be_positive():
    with pytest.raises(ValueError):
        LocalRateLimiter(0)


def test_default_burst_is_a_fifth_of_a_second():
    assert default_burst(20) == 4
    assert default_burst(100) == 20
    assert default_burst(0.5) == 1


def test_embedded_mode_limits_in_process(make_settings):
    chosen = make_rate_limiter(make_settings(stripe_rate_limit=7))
    assert isinstance(chosen, LocalRateLimiter)
    assert chosen.interval == pytest.approx(1 / 7)


def test_a_redis_broker_lends_its_redis_to_the_limiter(make_settings):
    chosen = make_rate_limiter(make_settings(broker_url="redis://127.0.0.1:6379/3", queue_prefix="acme"))
    assert isinstance(chosen, RedisRateLimiter)
    assert chosen.key == "acme:stripe-rate"
    assert chosen.client.connection_pool.connection_kwargs["db"] == 3


def test_rabbitmq_uses_billing_redis_url_when_set_else_a_local_limiter(make_settings):
    amqp = "amqp://guest:guest@127.0.0.1:5672//"
    with_redis = make_rate_limiter(make_settings(broker_url=amqp, redis_url="redis://127.0.0.1:6379/4"))
    assert isinstance(with_redis, RedisRateLimiter)
    assert isinstance(make_rate_limiter(make_settings(broker_url=amqp)), LocalRateLimiter)


def test_bootstrap_gives_the_gateway_the_chosen_limiter(make_settings):
    from billing_sync.bootstrap import bootstrap

    bus = bootstrap(make_settings(stripe_rate_limit=5))
    assert isinstance(bus.gateway.limiter, LocalRateLimiter)
    assert bus.gateway.limiter.interval == pytest.approx(0.2)
