"""Usage endpoint throughput and latency: `POST /v1/tenants/{id}/usage` through the real ASGI app
into a temporary PostgreSQL database, 32 clients at a time.

The baseline, in the same run and the same stack (Starlette, the thread pool, the same SQLAlchemy
engine and pool), is a route that makes one bare `UPDATE quota_counters SET used = used + 1 …
RETURNING used` round trip and commits: the least an atomic database counter can cost. The
endpoint adds the edge checks and, in its one statement (models/quota_statement.py), the
snapshot and period reads, the per-second counter, the idempotency row and the threshold check.
Two shapes: the clients spread over 32 tenants, and all on one tenant's counter (a hot row:
every update waits for the row lock). Baseline and endpoint run in alternating rounds, so that
the shared machine's changing load hits both alike.

    .venv/bin/python bench/usage_bench.py [N]    (default N=3000 per run; BILLING_BENCH_PG_URL)

Prints a table and writes bench/results/usage.json.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import logging
import platform
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import structlog
from ingress_bench import summarize
from relay_bench import PG_URL, temporary_database
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from billing_sync.bootstrap import bootstrap
from billing_sync.config.settings import Settings
from billing_sync.ingress.usage_api import routes
from billing_sync.models import EntitlementSnapshot, QuotaCounter, Subscription, Tenant, make_engine
from billing_sync.models.migrate import upgrade

CONCURRENCY = 32
ROUNDS = 3
WARM_UP = 640  # 32 requests per pooled connection (pool_size 10 + max_overflow 10)
TOKEN = "bench-token"
RESULTS = Path(__file__).resolve().parent / "results" / "usage.json"
NOW = datetime.now(UTC)
PERIOD_START = NOW - timedelta(days=3)
BARE_UPDATE = text("UPDATE quota_counters SET used = used + 1 WHERE tenant_id = :t AND feature = 'api_calls' "
                   "AND period_start = :p RETURNING used")


def seed(bus, tenants: list[str]) -> None:
    with bus.uow_factory() as uow:
        for tenant in tenants:
            uow.session.add(Tenant(id=tenant))
        uow.session.flush()
        for n, tenant in enumerate(tenants):
            uow.session.add(EntitlementSnapshot(tenant_id=tenant, version=1, plan="pro", status="active",
                                                features=[], limits={"api_calls": 10**12}, cause="bench"))
            uow.session.add(Subscription(id=f"sub_bench{n}", tenant_id=tenant, status="active",
                                         current_period_start=PERIOD_START,
                                         current_period_end=PERIOD_START + timedelta(days=30),
                                         stripe_created=PERIOD_START))
            uow.session.add(QuotaCounter(tenant_id=tenant, feature="api_calls", period_start=PERIOD_START,
                                         used=0, reserved=0))
        uow.commit()


def baseline_app(engine) -> Starlette:
    def bump(tenant: str) -> int:
        with engine.begin() as conn:
            return int(conn.execute(BARE_UPDATE, {"t": tenant, "p": PERIOD_START}).scalar_one())

    async def endpoint(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"used": await run_in_threadpool(bump, request.path_params["tenant_id"])})

    return Starlette(routes=[Route("/v1/tenants/{tenant_id}/usage", endpoint, methods=["POST"])])


async def run(app, tenants: list[str], n: int, tag: str) -> tuple[float, list[float]]:
    latencies: list[float] = []
    numbers = itertools.count()
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://bench", headers=headers) as client:
        async def worker() -> None:
            while (i := next(numbers)) < n:
                body = {"feature": "api_calls", "quantity": 1, "idempotency_key": f"{tag}-{i}"}
                started = time.perf_counter()
                response = await client.post(f"/v1/tenants/{tenants[i % len(tenants)]}/usage", json=body)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise RuntimeError(f"unexpected {response.status_code}: {response.text}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return time.perf_counter() - started, latencies


def interleaved(baseline, endpoint, tenants: list[str], n: int, shape: str) -> tuple[dict, dict]:
    """`n` requests to each app in ROUNDS alternating rounds, so that a change in the shared
    machine's load hits the baseline and the endpoint alike."""
    runs: dict[str, tuple[float, list[float]]] = {"b": (0.0, []), "e": (0.0, [])}
    for round_ in range(ROUNDS):
        for tag, app in (("b", baseline), ("e", endpoint)):
            took, latencies = asyncio.run(run(app, tenants, n // ROUNDS, f"{tag}-{len(tenants)}-{round_}"))
            runs[tag] = (runs[tag][0] + took, runs[tag][1] + latencies)
    return (summarize(f"bare UPDATE, {shape}", CONCURRENCY, *runs["b"]),
            summarize(f"usage endpoint, {shape}", CONCURRENCY, *runs["e"]))


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    n -= n % ROUNDS
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    db_url, drop = temporary_database(PG_URL)
    try:
        upgrade(db_url)
        engine = make_engine(db_url)
        bus = bootstrap(Settings(_env_file=None, database_url=db_url, api_tokens=TOKEN, log_level="ERROR"),
                        engine=engine)
        spread = [f"tenant-{n:02d}" for n in range(CONCURRENCY)]
        seed(bus, spread)
        endpoint, baseline = Starlette(routes=routes(bus)), baseline_app(engine)
        # Every pooled connection has prepared both statements before the clock runs (psycopg
        # prepares a statement on its 5th use on a connection, PostgreSQL settles on a generic
        # plan after 5 more).
        asyncio.run(run(baseline, spread, WARM_UP, "warm-b"))
        asyncio.run(run(endpoint, spread, WARM_UP, "warm-e"))
        results = []
        for shape, tenants in (("32 tenants", spread), ("1 tenant (hot row)", spread[:1])):
            results.append(interleaved(baseline, endpoint, tenants, n, shape))
        with engine.connect() as conn:
            counted = conn.execute(text("SELECT sum(used) FROM usage_counters")).scalar_one()
        assert counted == WARM_UP + 2 * n, f"the endpoint counted {counted}"  # warm-up + 2 shapes
        engine.dispose()
    finally:
        drop()
    results = [row for pair in results for row in pair]

    ratios = {results[i + 1]["name"]: round(results[i + 1]["requests_per_s"] / results[i]["requests_per_s"], 3)
              for i in (0, 2)}
    report = {"benchmark": "usage: POST /v1/tenants/{id}/usage through the ASGI app on PostgreSQL",
              "requests_per_run": n, "python": platform.python_version(), "machine": platform.machine(),
              "results": results, "throughput_ratio_to_bare_update": ratios}
    print(f"{'':36} {'conc':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for row in results:
        print(f"{row['name']:36} {row['concurrency']:>5} {row['requests_per_s']:>9} {row['p50_ms']:>8} "
              f"{row['p99_ms']:>8}")
    for name, ratio in ratios.items():
        print(f"{name}: {ratio:.0%} of the bare UPDATE's throughput (goal ≥ 50 %)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
