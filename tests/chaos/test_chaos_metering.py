"""Metering under worker kills, on real processes: usage keeps arriving (into windows already
sent, too) while the worker role that flushes it to Stripe is SIGKILLed again and again, mid-
flush (the emulator answers slowly, so kills land between Stripe's answer and the mark). Once
the fleet settles, the sum that reached Stripe, per the emulator's meter event summaries, equals
the local sum for every tenant: nothing lost, nothing counted twice. Broker: the shared Redis."""
from __future__ import annotations

import random
import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from billing_sync.handlers.metering import window_start
from billing_sync.models import MeterDelivery, Tenant, UsageCounter, make_engine, unit_of_work_factory

pytestmark = pytest.mark.slow  # CI runs these; the quick run (-m "not slow") skips them

TENANTS = 12
KILLS = 6


@pytest.fixture(scope="module")
def fleet(make_fleet, chaos_db, shared_bus_url):
    return make_fleet(database_url=chaos_db, broker_url=shared_bus_url, roles=("worker", "scheduler"),
                      BILLING_METER_FLUSH_INTERVAL_S="1", BILLING_METER_SETTLE_S="0",
                      BILLING_HEARTBEAT_TIMEOUT_MS="2000", BILLING_STRIPE_METER_RATE_LIMIT="50")


def _settled(uow_factory) -> bool:
    with uow_factory() as uow:
        unclaimed = uow.session.execute(select(func.count()).select_from(UsageCounter).where(
            UsageCounter.used != UsageCounter.metered)).scalar_one()
        pending = uow.session.execute(select(func.count()).select_from(MeterDelivery).where(
            MeterDelivery.state != "sent")).scalar_one()
    return unclaimed == 0 and pending == 0


@pytest.mark.timeout(300)
def test_killed_flushers_neither_lose_nor_double_count_usage(fleet, chaos_db):
    engine = make_engine(chaos_db)
    uow_factory = unit_of_work_factory(engine)
    customers = {}
    with uow_factory() as uow:
        for n in range(TENANTS):
            tenant_id = f"meter-{n}-{random.randrange(10**6)}"
            customer = fleet.stripe.v1.customers.create(params={"metadata": {"tenant_id": tenant_id}})
            uow.session.add(Tenant(id=tenant_id, stripe_customer_id=customer.id))
            customers[tenant_id] = customer.id
        uow.commit()
    local = dict.fromkeys(customers, 0)
    last = window_start(datetime.now(UTC))   # every window before this minute may be sent at once
    first = last - timedelta(minutes=8)
    rng = random.Random(7)

    def record_some(count: int) -> None:
        with uow_factory() as uow:
            for _ in range(count):
                tenant_id = rng.choice(list(customers))
                # Any second of the 8 minutes: windows sent already get their next event.
                at = first + timedelta(seconds=rng.randrange(8 * 60))
                quantity = rng.randrange(1, 50)
                uow.quotas.add_second(tenant_id, "api_calls", at, quantity)
                local[tenant_id] += quantity
            uow.commit()

    fleet.emulator.faults.latency_ms = 150   # each send takes a while: kills land mid-send and before marks
    try:
        for _ in range(KILLS):
            for _ in range(5):
                record_some(40)
            time.sleep(rng.uniform(1.5, 3.5))
            fleet.kill("worker")
            fleet.start("worker", "--processes", "1", "--threads", "2")
        fleet.emulator.faults.latency_ms = 0
        deadline = time.monotonic() + 120
        while not _settled(uow_factory):
            assert time.monotonic() < deadline, fleet.logs()
            time.sleep(1)
    finally:
        fleet.emulator.faults.latency_ms = 0

    meter_id = next(m.id for m in fleet.stripe.v1.billing.meters.list().data if m.event_name == "api_calls")
    end = last
    for tenant_id, customer_id in customers.items():
        summaries = fleet.stripe.v1.billing.meters.event_summaries.list(meter_id, params={
            "customer": customer_id, "start_time": int(first.timestamp()), "end_time": int(end.timestamp())})
        assert sum(s.aggregated_value for s in summaries.data) == local[tenant_id], tenant_id
    with uow_factory() as uow:
        deliveries = uow.session.execute(select(func.count()).select_from(MeterDelivery)).scalar_one()
    resent = len(re.findall(r'"duplicate": [1-9]', fleet.logs(tail=10**7)))
    print(f"{sum(local.values())} units over {TENANTS} tenants in {deliveries} meter events; {KILLS} worker kills; "
          f"{resent} flushes met a duplicate identifier")
    engine.dispose()
