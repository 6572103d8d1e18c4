"""`GET /v1/tenants/{id}/billing` latency at a fixed request rate, on a real `billing-sync ingress`
process (uvicorn) over PostgreSQL, against `GET /healthz` on the same server in the same run.

The database is a temporary one (`bs_bench_*`), migrated and seeded with `--tenants` tenants whose
billing page mirror is filled (customer, card, subscription, upcoming invoice, invoices), as the
handlers would leave it. Each phase sends requests open-loop at `--rate` per second for
`--seconds` (a request starts on schedule whether or not earlier ones have answered, so a slow
server shows up as latency, not as a lower rate), round-robin over the tenants, over keep-alive
connections. Latency is measured from the scheduled start, so client-side queueing counts.

    .venv/bin/python -m bench.billing_bench [--rate 500] [--seconds 10] [--tenants 200]

Prints p50/p99/max per phase and writes bench/results/billing.json. The issue's target is
`billing` p99 ≤ 10 ms at 500 requests/s on the 2-core development machine; the client shares it.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from bench.process_stats import process_cpu_seconds
from tests.fleet_processes import wait_until_healthy

from billing_sync.bootstrap import bootstrap
from billing_sync.config.settings import Settings
from billing_sync.handlers.billing_account import refresh_billing_document
from billing_sync.models import (
    BillingAccount,
    EntitlementSnapshot,
    Invoice,
    Subscription,
    SubscriptionItem,
    Tenant,
    make_engine,
    make_session_factory,
)
from billing_sync.models.migrate import upgrade

PG_ADMIN_URL = os.environ.get("BILLING_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
RESULTS = Path(__file__).parent / "results" / "billing.json"
BIN = Path(sys.executable).parent / "billing-sync"
TOKEN = "bench-token"


class NoGateway:
    """Seeding reads nothing from Stripe."""

    def __getattr__(self, name: str):
        raise AssertionError(f"the seed called Stripe: {name}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def seed(url: str, tenants: int) -> list[str]:
    now = datetime.now(UTC)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    ids = [f"bench-{i:05d}" for i in range(tenants)]
    with sessions() as session, session.begin():
        for n, tenant_id in enumerate(ids):
            session.add(Tenant(id=tenant_id, stripe_customer_id=f"cus_bench{n:05d}", name=tenant_id))
        session.flush()
        for n, tenant_id in enumerate(ids):
            sub = Subscription(id=f"sub_bench{n:05d}", tenant_id=tenant_id, status="active",
                               current_period_start=now - timedelta(days=10),
                               current_period_end=now + timedelta(days=20),
                               stripe_created=now - timedelta(days=40), synced_at=now)
            sub.items = [SubscriptionItem(id=f"si_bench{n:05d}", price_id="price_pro", price_lookup_key="pro_monthly",
                                          product_id="prod_pro", quantity=3)]
            session.add(sub)
            session.add(BillingAccount(
                tenant_id=tenant_id, version=0, synced_at=now, upcoming_synced_at=now,
                customer={"name": tenant_id, "email": f"{tenant_id}@example.test", "tax_ids": [],
                          "address": {"line1": "1 Main St", "line2": None, "city": "Springfield", "state": None,
                                      "postal_code": "12345", "country": "US"}},
                payment_method={"id": f"pm_bench{n:05d}", "type": "card", "brand": "visa", "last4": "4242",
                                "exp_month": 12, "exp_year": 2034},
                payment_method_id=f"pm_bench{n:05d}",
                upcoming_invoice={"amount_due": 14700, "currency": "usd",
                                  "date": (now + timedelta(days=20)).isoformat()}))
            session.add(EntitlementSnapshot(tenant_id=tenant_id, version=2, plan="pro", status="active",
                                            features=["sso"], limits={"seats": 3}, updated_at=now))
            for k in range(12):
                created = now - timedelta(days=30 * k)
                session.add(Invoice(id=f"in_bench{n:05d}x{k:02d}", tenant_id=tenant_id, status="paid", number=f"B-{k}",
                                    amount_due=14700, amount_paid=14700, currency="usd", created=created,
                                    period_start=created - timedelta(days=30), period_end=created, synced_at=now))
    # The stored document, as the handlers leave it after their re-reads.
    bus = bootstrap(Settings(_env_file=None, database_url=url), engine=engine, gateway=NoGateway())
    for tenant_id in ids:
        with bus.uow_factory() as uow:
            refresh_billing_document(uow, uow.tenants.lock(tenant_id), catalog=bus.catalog, cause="bench")
            uow.commit()
    engine.dispose()
    return ids


class Connection:
    """One keep-alive HTTP/1.1 connection, one request at a time. A raw client: httpx costs about
    a millisecond per request of the client's CPU, which on two shared cores would be measured
    as the server's latency."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str):
        self.reader, self.writer, self.host = reader, writer, host

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, f"{host}:{port}")

    async def get(self, path: str) -> int:
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
                          .encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length:
            await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


async def phase(pool: asyncio.Queue, paths: list[str], rate: float, seconds: float, server_pid: int = 0) -> dict:
    """Open loop: request i starts at t0 + i/rate on an idle connection; latency counts from that
    scheduled start (so waiting for a free connection counts too). Also the server process's CPU
    time per request, which the neighbours on a shared machine disturb far less than latency:
    one process near a full core is where the tail latency comes from."""
    total = int(rate * seconds)
    cpu_before = process_cpu_seconds(server_pid) if server_pid else 0.0
    latencies: list[float] = []
    errors = 0

    async def one(i: int, start_at: float) -> None:
        nonlocal errors
        conn = await pool.get()
        try:
            status = await conn.get(paths[i % len(paths)])
        finally:
            pool.put_nowait(conn)
        latencies.append(time.perf_counter() - start_at)
        errors += status != 200

    tasks = []
    t0 = time.perf_counter() + 0.05
    for i in range(total):
        start_at = t0 + i / rate
        delay = start_at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, start_at)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - t0
    ordered = sorted(latencies)
    pick = lambda q: round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)  # noqa: E731
    cpu_ms = (process_cpu_seconds(server_pid) - cpu_before) * 1000 / total if server_pid else None
    return {"requests": total, "errors": errors, "achieved_per_s": round(total / elapsed, 1),
            "p50_ms": pick(0.50), "p90_ms": pick(0.90), "p99_ms": pick(0.99), "max_ms": round(ordered[-1] * 1000, 2),
            "server_cpu_ms_per_request": round(cpu_ms, 3) if cpu_ms is not None else None}


async def measure(port: int, tenants: list[str], rate: float, seconds: float, server_pid: int) -> dict:
    pool: asyncio.Queue = asyncio.Queue()
    conns = [await Connection.open("127.0.0.1", port) for _ in range(32)]
    for conn in conns:
        pool.put_nowait(conn)
    try:
        billing = [f"/v1/tenants/{t}/billing" for t in tenants]
        invoices = [f"/v1/tenants/{t}/invoices?limit=10" for t in tenants]
        for paths in (billing, invoices, ["/healthz"]):  # warm-up: connections, caches, the thread pool
            await phase(pool, paths, rate, 1.0)
        return {"healthz (baseline)": await phase(pool, ["/healthz"], rate, seconds, server_pid),
                "billing": await phase(pool, billing, rate, seconds, server_pid),
                "invoices": await phase(pool, invoices, rate, seconds, server_pid)}
    finally:
        for conn in conns:
            conn.close()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--tenants", type=int, default=200)
    args = parser.parse_args()

    name = f"bs_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    proc = None
    try:
        upgrade(url)
        tenants = seed(url, args.tenants)
        port = free_port()
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("BILLING_")},
               "BILLING_DATABASE_URL": url, "BILLING_BROKER_URL": "redis://127.0.0.1:6379/14",
               "BILLING_QUEUE_PREFIX": f"bench-{uuid.uuid4().hex[:6]}", "BILLING_API_TOKENS": TOKEN,
               "BILLING_LOG_LEVEL": "WARNING", "BILLING_LOG_FORMAT": "json"}
        proc = subprocess.Popen([str(BIN), "ingress", "--port", str(port)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until_healthy(f"http://127.0.0.1:{port}")
        results = asyncio.run(measure(port, tenants, args.rate, args.seconds, proc.pid))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    report = {"benchmark": "billing: GET /v1/tenants/{id}/billing at a fixed rate, real ingress over PostgreSQL",
              "rate_per_s": args.rate, "seconds": args.seconds, "tenants": args.tenants,
              "target": "billing p99 <= 10 ms",
              "python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
              "results": results,
              "billing_p99_over_baseline_ms": round(
                  results["billing"]["p99_ms"] - results["healthz (baseline)"]["p99_ms"], 2)}
    print(f"{'':20} {'req/s':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} {'errors':>7} "
          f"{'cpu ms/req':>10}")
    for label, row in results.items():
        print(f"{label:20} {row['achieved_per_s']:>8} {row['p50_ms']:>8} {row['p90_ms']:>8} {row['p99_ms']:>8} "
              f"{row['max_ms']:>8} {row['errors']:>7} {row['server_cpu_ms_per_request']:>10}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    return 0 if all(row["errors"] == 0 for row in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
