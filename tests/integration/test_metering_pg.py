"""Metering on PostgreSQL against the emulator, through the real adapter: usage written by many
threads while several claimers and flushers race reaches Stripe exactly (its meter event
summaries equal the local counters), each window's usage in one event plus one per late
arrival, and a duplicate identifier from a sender that died before marking counts as delivered.
Worker processes SIGKILLed mid-flush: tests/chaos/test_chaos_metering.py."""
from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta

import pytest
import stripe
from sqlalchemy import func, select

from billing_sync.bms.gateway import StripeGateway
from billing_sync.errors import TransientError
from billing_sync.handlers import metering
from billing_sync.handlers.meter_reconcile import reconcile_usage
from billing_sync.handlers.metering import window_start
from billing_sync.models import MeterDelivery, Tenant, UsageCounter

from contexts import Clock, make_bus

MINUTE = timedelta(minutes=1)


@pytest.fixture
def clock():
    return Clock(window_start(datetime.now(UTC)))


@pytest.fixture
def bus(pg_engine, make_settings, emulator, clock):
    settings = make_settings(database_url=str(pg_engine.url), meter_settle_s=0)
    return make_bus(settings, pg_engine, StripeGateway("sk_test_metering", api_base=emulator.url), clock)


def tenants(bus, emulator, count: int) -> dict[str, str]:
    """`count` tenants with a Stripe customer each: tenant id → customer id."""
    client = stripe.StripeClient("sk_test_metering", base_addresses={"api": emulator.url})
    made = {}
    with bus.uow_factory() as uow:
        for n in range(count):
            tenant_id = f"m{n}-{random.randrange(10**6)}"
            customer = client.v1.customers.create(params={"metadata": {"tenant_id": tenant_id}})
            uow.session.add(Tenant(id=tenant_id, stripe_customer_id=customer.id))
            made[tenant_id] = customer.id
        uow.commit()
    return made


def record(bus, tenant_id: str, at: datetime, quantity: int) -> None:
    with bus.uow_factory() as uow:
        uow.quotas.add_second(tenant_id, "api_calls", at, quantity)
        uow.commit()


def stripe_sum(bus, customer_id: str, start: datetime, end: datetime) -> float:
    meter_id = bus.dependencies["gateway"].meter_id("api_calls")
    return sum(s.value for s in bus.dependencies["gateway"].meter_event_summaries(
        meter_id, customer_id, int(start.timestamp()), int(end.timestamp())))


def drain(bus) -> None:
    for _ in range(100):
        result = bus.call(metering.flush)
        if not result.get("skipped") and result["claimed"] == 0 and result["sent"] + result["duplicate"] == 0:
            return
    raise AssertionError("metering did not drain")


def test_racing_writers_claimers_and_flushers_meter_every_unit_exactly_once(bus, emulator, clock):
    customers = tenants(bus, emulator, 8)
    start = clock() - 10 * MINUTE
    written: dict[str, int] = dict.fromkeys(customers, 0)
    lock, stop = threading.Lock(), threading.Event()

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(60):
            tenant_id = rng.choice(list(customers))
            at = start + timedelta(seconds=rng.randrange(10 * 60))   # any window, sent or not
            quantity = rng.randrange(1, 20)
            record(bus, tenant_id, at, quantity)
            with lock:
                written[tenant_id] += quantity

    def flusher(claim_only: bool) -> None:
        while not stop.is_set():
            try:
                if claim_only:   # racing the flusher's own claim on the same rows
                    bus.call(metering.claim_due)
                else:
                    bus.call(metering.flush)
            except TransientError:   # another claimer took the window's next seq first
                pass
            stop.wait(0.01)

    writers = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    flushers = [threading.Thread(target=flusher, args=(n == 0,)) for n in range(3)]
    for thread in writers + flushers:
        thread.start()
    for thread in writers:
        thread.join()
    stop.set()
    for thread in flushers:
        thread.join()
    drain(bus)

    for tenant_id, customer_id in customers.items():
        assert stripe_sum(bus, customer_id, start, clock()) == written[tenant_id], tenant_id
    with bus.uow_factory() as uow:
        assert uow.session.execute(select(func.count()).select_from(UsageCounter).where(
            UsageCounter.used != UsageCounter.metered)).scalar_one() == 0
        states = dict(uow.session.execute(
            select(MeterDelivery.state, func.count()).group_by(MeterDelivery.state)).all())
    assert set(states) == {"sent"}
    report = bus.call(reconcile_usage, start, clock())
    assert report["checked"] == len(customers) and report["drifted"] == [] and report["errors"] == []


def test_each_closed_window_is_one_event_and_a_resend_after_a_lost_mark_is_delivered(bus, emulator, clock,
                                                                                      monkeypatch):
    (tenant_id, customer_id), = tenants(bus, emulator, 1).items()
    first = clock() - 3 * MINUTE
    for minute in range(3):
        for second in range(0, 60, 10):
            record(bus, tenant_id, first + minute * MINUTE + timedelta(seconds=second), 1)
    gateway = bus.dependencies["gateway"]
    real = gateway.create_meter_event
    sent = []

    def send_then_lose_the_answer(params, *, idempotency_key):
        sent.append(params["identifier"])
        real(params, idempotency_key=idempotency_key)
        if len(sent) == 1:
            raise TransientError("the answer was lost")
        return None

    monkeypatch.setattr(gateway, "create_meter_event", send_then_lose_the_answer)
    with pytest.raises(TransientError):
        bus.call(metering.flush)
    monkeypatch.setattr(gateway, "create_meter_event", lambda params, *, idempotency_key: (
        sent.append(params["identifier"]), real(params, idempotency_key=idempotency_key + ":new-key"))[1])
    result = bus.call(metering.flush)   # the first event again, under a new key: Stripe's duplicate answer
    assert result == {"claimed": 0, "sent": 2, "duplicate": 1, "refused": 0}
    assert len(set(sent)) == 3 and stripe_sum(bus, customer_id, first, clock()) == 18
    assert bus.call(metering.flush)["sent"] == 0   # flushed once
