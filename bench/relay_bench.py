"""Outbox relay throughput: N outbox rows in PostgreSQL published through the relay to Redis and
RabbitMQ, against a baseline of plain kombu publishes of the same envelopes (no database).

The difference is the price of the outbox (claiming rows with FOR UPDATE SKIP LOCKED, marking them
published, one transaction per batch). A bound consumer queue makes every message really routed,
and its depth is checked against N afterwards.

    .venv/bin/python bench/relay_bench.py [--n 5000] [--batch 100]

Needs PostgreSQL (BILLING_BENCH_PG_URL, default postgresql://postgres@127.0.0.1:5432/test — a
temporary database is created and dropped), Redis (BILLING_BENCH_REDIS_URL) and RabbitMQ
(BILLING_BENCH_AMQP_URL); an unreachable bus is skipped. Writes bench/results/relay.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from kombu import Producer, Queue
from sqlalchemy import insert

from billing_sync.bootstrap import bootstrap
from billing_sync.config.bus import CLOUDEVENTS, EVENTS_EXCHANGE, cloudevent, connect, routing_key
from billing_sync.config.settings import Settings
from billing_sync.models import make_engine
from billing_sync.models.migrate import upgrade
from billing_sync.models.tables import OutboxMessage
from billing_sync.workers.relay import Relay

PG_URL = os.environ.get("BILLING_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
BUSES = {
    "redis": os.environ.get("BILLING_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"),
    "rabbitmq": os.environ.get("BILLING_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//"),
}
RESULTS = Path(__file__).resolve().parent / "results" / "relay.json"
EVENT_TYPE = "billing.entitlements.changed"


def temporary_database(admin_url: str) -> tuple[str, callable]:
    import psycopg

    name = f"bs_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return admin_url.rsplit("/", 1)[0] + f"/{name}", drop


def payload(n: int) -> dict:
    tenant = f"tenant-{n % 200}"
    return {"tenant_id": tenant, "version": n, "plan": "pro", "status": "active",
            "features": ["api", "sso", "audit_log"], "limits": {"seats": 25, "projects": 100},
            "period_end": "2026-12-01T00:00:00Z", "cause": f"evt_{n:010d}"}


def fill_outbox(engine, n: int) -> list[dict]:
    rows = [{"event_id": str(uuid.uuid4()), "type": EVENT_TYPE, "subject": payload(i)["tenant_id"],
             "data": payload(i), "created_at": datetime.now(UTC)} for i in range(n)]
    with engine.begin() as conn:
        for start in range(0, n, 1000):
            conn.execute(insert(OutboxMessage), rows[start:start + 1000])
    return rows


def bound_queue(url: str) -> Queue:
    queue = Queue(f"relay-bench-{uuid.uuid4().hex[:6]}", EVENTS_EXCHANGE, routing_key="#", durable=True)
    with connect(url) as conn:
        queue(conn.default_channel).declare()
    return queue


def depth_and_delete(url: str, queue: Queue) -> int:
    with connect(url) as conn:
        bound = queue(conn.default_channel)
        bound.declare()  # kombu's Redis emulation only unbinds what this connection declared
        _, depth, _ = bound.queue_declare(passive=True)
        bound.delete()
    return depth


def bench_relay(bus, url: str, n: int, batch: int) -> float:
    fill_outbox(bus.engine, n)
    relay = Relay(bus, url, batch=batch)
    relay.publish_pending(1)  # connect and declare outside the timing
    started = time.perf_counter()
    published = 1
    while published < n:
        count = relay.publish_pending(batch)
        if not count:
            break
        published += count
    elapsed = time.perf_counter() - started
    relay.close()
    assert published == n, (published, n)
    return (n - 1) / elapsed


def bench_baseline(url: str, n: int) -> float:
    envelopes = [cloudevent(EVENT_TYPE, payload(i)["tenant_id"], payload(i)) for i in range(n)]
    with connect(url) as conn:
        conn.ensure_connection(max_retries=0)
        producer = Producer(conn.default_channel, exchange=EVENTS_EXCHANGE, auto_declare=True)
        started = time.perf_counter()
        for envelope in envelopes:
            producer.publish(envelope, exchange=EVENTS_EXCHANGE, routing_key=routing_key(EVENT_TYPE),
                             serializer=CLOUDEVENTS, delivery_mode=2, retry=False)
        return n / (time.perf_counter() - started)


def reachable(url: str) -> bool:
    try:
        with connect(url) as conn:
            conn.ensure_connection(max_retries=0)
        return True
    except Exception:
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="outbox rows per bus")
    parser.add_argument("--batch", type=int, default=100, help="relay batch size")
    args = parser.parse_args()

    db_url, drop = temporary_database(PG_URL)
    results: dict = {}
    try:
        upgrade(db_url)
        engine = make_engine(db_url)
        bus = bootstrap(Settings(database_url=db_url, _env_file=None), engine=engine)
        for name, url in BUSES.items():
            if not reachable(url):
                print(f"{name}: unreachable, skipped", file=sys.stderr)
                continue
            queue = bound_queue(url)
            relay_eps = bench_relay(bus, url, args.n, args.batch)
            baseline_eps = bench_baseline(url, args.n)
            routed = depth_and_delete(url, queue)
            results[name] = {
                "relay_events_per_s": round(relay_eps),
                "baseline_kombu_events_per_s": round(baseline_eps),
                "relay_vs_baseline": round(relay_eps / baseline_eps, 3),
                "messages_routed": routed,
            }
            print(f"{name:9} relay {relay_eps:8.0f} ev/s   plain kombu {baseline_eps:8.0f} ev/s   "
                  f"ratio {relay_eps / baseline_eps:.2f}   routed {routed}/{2 * args.n}")
            if routed != 2 * args.n:
                print(f"{name}: expected {2 * args.n} messages on the bound queue, found {routed}", file=sys.stderr)
                return 1
        engine.dispose()
    finally:
        drop()

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "benchmark": "outbox relay: PostgreSQL outbox -> billing.events",
        "n": args.n, "batch": args.batch,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
        "results": results,
    }, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(Path.cwd()) if RESULTS.is_relative_to(Path.cwd()) else RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
