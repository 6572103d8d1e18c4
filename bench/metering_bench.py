"""Metering throughput: usage records per second the fleet meters to Stripe, and Stripe calls per
usage record, on PostgreSQL against the bundled emulator over HTTP (the real adapter, the real
rate limiters at their default shares).

- **metering by window** (handlers/metering.py): 1,000 usage records per second over 100 tenants
  for one minute window, written into the per-second counters as the consumptions leave them
  (one upsert per tenant and second with that second's records; the endpoint's own speed is
  bench/usage_bench.py's),
  while a flusher claims and sends closed windows every second, as the `flush_meter` actor does,
  under `BILLING_STRIPE_METER_RATE_LIMIT` (5/s). Records are stamped on a clock shifted to the
  start of a minute, so the load fills exactly one window per tenant.
- **baseline, in the same run**: one meter event per usage record (what billing.usage.recorded
  did before issue 10), under the shared `BILLING_STRIPE_RATE_LIMIT` (20/s), for 10 s.

Checks that the emulator's meter event summaries equal what was written, per tenant.

    .venv/bin/python bench/metering_bench.py [RECORDS_PER_S] [SECONDS]   (default 1000 60; BILLING_BENCH_PG_URL)

Prints the figures and writes bench/results/metering.json.
"""
from __future__ import annotations

import json
import logging
import platform
import random
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import stripe
import structlog
from relay_bench import PG_URL, temporary_database

from billing_sync.bms.gateway import StripeGateway
from billing_sync.bms.rate_limit import LocalRateLimiter, default_burst
from billing_sync.bootstrap import bootstrap
from billing_sync.config.settings import Settings
from billing_sync.handlers import metering
from billing_sync.models import Tenant, make_engine
from billing_sync.models.migrate import upgrade

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from throwaway import start_emulator_with_catalog

TENANTS = 100
BATCH = 50                       # records per transaction, as concurrent consumptions commit
RESULTS = Path(__file__).resolve().parent / "results" / "metering.json"


class CountingGateway(StripeGateway):
    """The adapter, counting the meter events it sends."""

    meter_calls = 0

    def create_meter_event(self, params: dict, *, idempotency_key: str) -> dict:
        type(self).meter_calls += 1
        return super().create_meter_event(params, idempotency_key=idempotency_key)


def shifted_clock(offset: timedelta):
    return lambda: datetime.now(UTC) - offset


def seed(bus, emulator_url: str) -> dict[str, str]:
    client = stripe.StripeClient("sk_test_bench", base_addresses={"api": emulator_url})
    customers = {}
    with bus.uow_factory() as uow:
        for n in range(TENANTS):
            tenant = f"tenant-{n:03d}"
            customers[tenant] = client.v1.customers.create(params={"metadata": {"tenant_id": tenant}}).id
            uow.session.add(Tenant(id=tenant, stripe_customer_id=customers[tenant]))
        uow.commit()
    return customers


def write_load(bus, now, rate: int, seconds: int, written: dict[str, int]) -> float:
    """`rate` records per second for `seconds`, stamped by `now`; the rate achieved."""
    rng, tenants = random.Random(1), sorted(written)
    started, sent = time.monotonic(), 0
    last_second = now().replace(microsecond=0) + timedelta(seconds=seconds - 1)   # a late batch stays in the window
    while (elapsed := time.monotonic() - started) < seconds:
        due = min(int(elapsed * rate) + BATCH, rate * seconds) - sent
        if due <= 0:
            time.sleep(0.005)
            continue
        due = min(due, 2 * rate)   # behind: catch up a little at a time, never one huge transaction
        at = min(now().replace(microsecond=0), last_second)
        batch: dict[str, int] = {}
        for _ in range(due):
            tenant = rng.choice(tenants)
            batch[tenant] = batch.get(tenant, 0) + 1
        with bus.uow_factory() as uow:   # what `due` consumptions leave in the per-second counters
            for tenant, quantity in batch.items():
                uow.quotas.add_second(tenant, "api_calls", at, quantity)
                written[tenant] += quantity
            uow.commit()
        sent += due
    return sent / (time.monotonic() - started)


def by_window(bus, now, rate: int, seconds: int, customers: dict[str, str], already: dict[str, int]) -> dict:
    """`already`: the baseline's events per customer, in the same summaries."""
    written = dict.fromkeys(customers, 0)
    stop, flushes = threading.Event(), []

    def flusher() -> None:
        while not stop.is_set():
            flushes.append(bus.call(metering.flush, budget_s=5.0))
            stop.wait(1.0)

    thread = threading.Thread(target=flusher, daemon=True)
    CountingGateway.meter_calls = 0
    thread.start()
    window_closes = time.monotonic() + 60 - now().second   # the load starts a minute on the bench's clock
    achieved = write_load(bus, now, rate, seconds, written)
    print(f"load done ({achieved:.0f} records/s); waiting for the window to close and go…", file=sys.stderr,
          flush=True)
    deadline = window_closes + bus.settings.meter_settle_s + 60
    while time.monotonic() < deadline:
        with bus.uow_factory() as uow:
            if uow.metering.pending_count() == 0 and CountingGateway.meter_calls >= len(customers):
                break
        time.sleep(0.2)
    delivered_after = time.monotonic() - window_closes
    stop.set()
    thread.join()
    gateway = bus.dependencies["gateway"]
    meter_id = gateway.meter_id("api_calls")
    first = int(now().timestamp()) // 3600 * 3600 - 3600
    mismatched = {}
    for tenant, customer in customers.items():
        counted = sum(s.value for s in gateway.meter_event_summaries(meter_id, customer, first, first + 3 * 3600))
        if counted != written[tenant] + already.get(customer, 0):
            mismatched[tenant] = [counted, written[tenant], already.get(customer, 0)]
    records = sum(written.values())
    return {"name": f"by window: {rate} records/s over {TENANTS} tenants, {seconds} s",
            "records": records, "records_per_s": round(achieved, 1), "stripe_calls": CountingGateway.meter_calls,
            "stripe_calls_per_record": round(CountingGateway.meter_calls / records, 5),
            "stripe_calls_per_s_over_the_window": round(CountingGateway.meter_calls / 60, 2),
            "delivered_s_after_window_closed": round(delivered_after, 1),
            "tenants_whose_stripe_sum_differs": mismatched}


def one_call_per_record(gateway: StripeGateway, customers: dict[str, str], seconds: int) -> dict:
    """The old path: each usage record its own meter event, under the shared budget."""
    started, sent, tenants = time.monotonic(), 0, sorted(customers)
    per_customer: dict[str, int] = {}
    now = int(time.time())
    while time.monotonic() - started < seconds:
        customer = customers[tenants[sent % TENANTS]]
        gateway.record_meter_event(event_name="api_calls", customer_id=customer, value=1,
                                   identifier=f"baseline-{sent}", timestamp=now, idempotency_key=f"baseline-{sent}")
        per_customer[customer] = per_customer.get(customer, 0) + 1
        sent += 1
    elapsed = time.monotonic() - started
    return {"name": f"baseline: one meter event per record, shared budget, {seconds} s", "records": sent,
            "records_per_s": round(sent / elapsed, 1), "stripe_calls": sent, "stripe_calls_per_record": 1.0,
            "per_customer": per_customer}


def main() -> int:
    rate = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    seconds = int(sys.argv[2]) if len(sys.argv) > 2 else 60
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    db_url, drop = temporary_database(PG_URL)
    emulator = start_emulator_with_catalog()
    try:
        upgrade(db_url)
        engine = make_engine(db_url)
        settings = Settings(_env_file=None, database_url=db_url, log_level="ERROR", meter_settle_s=2)
        sync_limit = LocalRateLimiter(settings.stripe_rate_limit, default_burst(settings.stripe_rate_limit))
        meter_limit = LocalRateLimiter(settings.stripe_meter_rate_limit,
                                       default_burst(settings.stripe_meter_rate_limit))
        gateway = CountingGateway("sk_test_bench", api_base=emulator.url, rate_limiter=sync_limit,
                                  meter_rate_limiter=meter_limit)
        bus = bootstrap(settings, engine=engine, gateway=gateway)
        customers = seed(bus, emulator.url)
        print(f"seeded {len(customers)} tenants; baseline 10 s…", file=sys.stderr, flush=True)
        baseline_gateway = StripeGateway("sk_test_bench", api_base=emulator.url, rate_limiter=sync_limit)
        baseline = one_call_per_record(baseline_gateway, customers, 10)
        # The load starts at a minute's start on the bench's clock, so it fills one window.
        moment = datetime.now(UTC)
        now = shifted_clock(timedelta(seconds=moment.second, microseconds=moment.microsecond))
        print(f"baseline done; metering {rate} records/s for {seconds} s…", file=sys.stderr, flush=True)
        windowed = by_window(bus.replace(now=now), now, rate, seconds, customers, baseline.pop("per_customer"))
        engine.dispose()
    finally:
        emulator.stop()
        drop()
    report = {"benchmark": "metering: usage records to Stripe meter events, PostgreSQL + emulator over HTTP",
              "python": platform.python_version(), "machine": platform.machine(),
              "meter_rate_limit_per_s": settings.stripe_meter_rate_limit,
              "shared_rate_limit_per_s": settings.stripe_rate_limit, "results": [baseline, windowed],
              "goal": "stripe_calls_per_record <= 0.005 at 1,000 records/s"}
    for row in (baseline, windowed):
        print(f"{row['name']}: {row['records_per_s']} records/s, {row['stripe_calls']} Stripe calls, "
              f"{row['stripe_calls_per_record']} calls per record")
    print(f"by window: delivered {windowed['delivered_s_after_window_closed']} s after the window closed; "
          f"Stripe sums differ for {len(windowed['tenants_whose_stripe_sum_differs'])} tenants")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    return 0 if not windowed["tenants_whose_stripe_sum_differs"] else 1


if __name__ == "__main__":
    sys.exit(main())
