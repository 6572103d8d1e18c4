"""Ingress throughput and latency: N signed webhooks through the real ASGI app into real Redis.

Runs the same requests twice in one process — once with the real durable enqueue (Dramatiq's
RedisBroker), once with a no-op enqueue — so the difference is what durability costs. Requests
go through httpx's ASGI transport (no sockets), one at a time (latency) and `CONCURRENCY` at a
time (throughput), so the figures are the app's own cost: signature check, JSON parsing,
validation, enqueue.

    .venv/bin/python bench/ingress_bench.py [N]    (default N=2000; Redis at BILLING_BENCH_REDIS_URL)

Prints a table and writes bench/results/ingress.json.
"""
from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import redis

from billing_sync.bootstrap import bootstrap
from billing_sync.config.settings import Settings
from billing_sync.ingress.app import create_app
from billing_sync.ingress.signature import sign_header
from billing_sync.workers.broker import make_broker

# Its own Redis database: the test suite flushes db 15 when a session starts.
REDIS_URL = os.environ.get("BILLING_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
SECRET = "whsec_bench"
CONCURRENCY = 32
RESULTS = Path(__file__).parent / "results" / "ingress.json"


def event_body(i: int) -> bytes:
    """A realistic event: a subscription object of ~2 KB, like Stripe's own."""
    event = {
        "id": f"evt_bench{i:08d}{uuid.uuid4().hex[:8]}", "object": "event", "api_version": "2026-10-28",
        "created": int(time.time()), "type": "customer.subscription.updated", "livemode": False,
        "pending_webhooks": 1, "request": {"id": None, "idempotency_key": None},
        "data": {"object": {
            "id": "sub_1MowQVLkdIwHu7ixeRlqHVzs", "object": "subscription", "customer": "cus_Na6dX7aXxi11N4",
            "status": "active", "cancel_at_period_end": False, "metadata": {"tenant_id": f"tenant-{i % 50}"},
            "items": {"object": "list", "data": [{
                "id": "si_Na6dzxczY5fwHx", "object": "subscription_item", "quantity": 3,
                "current_period_start": 1679609767, "current_period_end": 1682288167,
                "price": {"id": "price_1MowQULkdIwHu7ixraBm864M", "object": "price", "lookup_key": "pro_monthly",
                          "product": "prod_NZKdYqrwEYx6iK", "unit_amount": 1000, "currency": "usd",
                          "recurring": {"interval": "month", "interval_count": 1}},
            }]},
            "description": "x" * 800,
        }, "previous_attributes": {"status": "trialing"}},
    }
    return json.dumps(event).encode()


async def run(app, bodies: list[bytes], concurrency: int = CONCURRENCY) -> tuple[float, list[float]]:
    latencies: list[float] = []
    queue: asyncio.Queue = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        async def worker():
            while not queue.empty():
                body = queue.get_nowait()
                headers = {"Stripe-Signature": sign_header(body, SECRET), "Content-Type": "application/json"}
                started = time.perf_counter()
                response = await client.post("/webhooks/stripe", content=body, headers=headers)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise RuntimeError(f"unexpected {response.status_code}: {response.text}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started, latencies


def summarize(name: str, concurrency: int, elapsed: float, latencies: list[float]) -> dict:
    ordered = sorted(latencies)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    return {"name": name, "concurrency": concurrency, "requests": len(latencies), "seconds": round(elapsed, 3),
            "requests_per_s": round(len(latencies) / elapsed, 1), "p50_ms": round(pick(0.50), 2),
            "p99_ms": round(pick(0.99), 2), "mean_ms": round(statistics.mean(latencies) * 1000, 2)}


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    prefix = f"bench-{uuid.uuid4().hex[:6]}"
    tmp = tempfile.mkdtemp(prefix="ingress-bench-")
    settings = Settings(_env_file=None, broker_url=REDIS_URL, queue_prefix=prefix, webhook_secrets=SECRET,
                        database_url=f"sqlite:///{tmp}/bench.db", log_level="ERROR")
    import logging

    import structlog
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    bus = bootstrap(settings)
    bodies = [event_body(i) for i in range(n)]
    client = redis.Redis.from_url(REDIS_URL)

    broker = make_broker(settings, make_current=False)
    durable = create_app(bus, broker=broker)
    baseline = create_app(bus, enqueue=lambda message: None)
    try:
        asyncio.run(run(baseline, bodies[:100]))  # warm-up (imports, connection pools)
        asyncio.run(run(durable, bodies[:100]))
        sequential = bodies[: n // 4]
        results = [
            summarize("no-op enqueue (baseline)", 1, *asyncio.run(run(baseline, sequential, 1))),
            summarize("Redis enqueue (durable)", 1, *asyncio.run(run(durable, sequential, 1))),
            summarize("no-op enqueue (baseline)", CONCURRENCY, *asyncio.run(run(baseline, bodies))),
            summarize("Redis enqueue (durable)", CONCURRENCY, *asyncio.run(run(durable, bodies))),
        ]
        queued = client.llen(f"{prefix}:{prefix}.stripe-events")
        expected = 100 + len(sequential) + n
        assert queued == expected, f"expected {expected} messages on the queue, found {queued}"
    finally:
        for key in client.scan_iter(match=f"{prefix}:*"):
            client.delete(key)
        broker.close()

    seq_base, seq_real, base, real = results
    report = {
        "benchmark": "ingress: signed Stripe webhooks through the ASGI app",
        "requests": n, "body_bytes": len(bodies[0]), "redis": REDIS_URL,
        "python": platform.python_version(), "machine": platform.machine(), "results": results,
        "durable_enqueue_cost_ms_p50_sequential": round(seq_real["p50_ms"] - seq_base["p50_ms"], 2),
        "throughput_ratio_concurrent": round(real["requests_per_s"] / base["requests_per_s"], 3),
    }
    print(f"{'':28} {'conc':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for row in results:
        print(f"{row['name']:28} {row['concurrency']:>5} {row['requests_per_s']:>9} {row['p50_ms']:>8} "
              f"{row['p99_ms']:>8}")
    print(f"durable enqueue adds {report['durable_enqueue_cost_ms_p50_sequential']} ms per request (p50, one at a "
          f"time); concurrent throughput is {report['throughput_ratio_concurrent']:.0%} of the no-op baseline")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
