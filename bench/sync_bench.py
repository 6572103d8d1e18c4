"""Stripe → product, end to end: how long a support-staff change in the Stripe dashboard takes to
reach `billing.events` as `billing.entitlements.changed`, and how many such changes per second
the fleet absorbs. The design promises "within seconds"; our target is p99 < 2 s.

The fleet runs as real processes (`billing-sync ingress`, `worker --processes 1 --threads 8`,
`relay`) on a temporary PostgreSQL database and Redis, with the Stripe emulator in this process
sending signed webhooks to the ingress. Phases:

1. setup       N tenants made directly in Stripe (customer with metadata tenant_id, starter
               subscription, pm_card_visa); wait for each tenant's first entitlements event.
2. latency     M changes one at a time, round-robin over the tenants (price starter<->pro and a
               new quantity each time, so every change has a unique expected state), each timed
               from just before the Stripe API call to the matching event seen on billing.events.
   A random pause of up to one relay poll period before each change keeps the samples from
   locking onto the relay's polling phase.
3. burst       K changes as fast as CLIENT_THREADS threads can make them (each tenant's changes
               stay in order in one thread); time until every tenant's final state was published.
4. memory      VmRSS of each role's process tree.

Baseline, same run, same changes: the emulator also delivers every webhook to a bare HTTP
receiver in this process (no signature check, no broker, no database), so the report shows
Stripe's (emulated) delivery latency next to what the pipeline adds on top of it. Stripe
requests are counted by API key (the fleet's vs. support staff's) by wrapping the emulator's
request handler, which gives the fleet's Stripe reads per delivered webhook.

    .venv/bin/python -m bench.sync_bench [--tenants 50] [--changes 200] [--burst 500]

Needs PostgreSQL (BILLING_BENCH_PG_URL, default postgresql://postgres@127.0.0.1:5432/test — a
temporary database is created and dropped) and Redis (BILLING_BENCH_REDIS_URL, default db 14).
Writes bench/results/sync.json. Every process it starts is stopped, also on failure or Ctrl-C.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import redis
from bench.process_stats import cpu_seconds, machine_cpu, memory
from bench.relay_bench import temporary_database
from bench.sync_probes import BareReceiver, StampedWatcher, StripeRequestCounter
from bench.sync_report import percentiles, print_report
from tests.fleet_processes import FleetProcesses, fleet_env

from billing_sync.bms.catalog_sync import ensure_catalog
from billing_sync.bms.gateway import StripeGateway
from billing_sync.config.catalog import load_catalog
from billing_sync.config.settings import DEFAULT_CATALOG, Settings
from billing_sync_emulator.server import EmulatorServer

PG_URL = os.environ.get("BILLING_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BILLING_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
RESULTS = Path(__file__).resolve().parent / "results" / "sync.json"
SECRET = "whsec_sync_bench"
FLEET_KEY = "sk_test_sync_bench_fleet"
STRIPE_RATE_LIMIT = 1000     # requests/s, fleet-wide: far above what the fleet asks for here
WORKER_THREADS = 8
CLIENT_THREADS = 4           # support staff clicking in parallel during the burst
TARGET_P99_S = 2.0


# -- support staff in the Stripe dashboard ------------------------------------------------------


class Tenant:
    def __init__(self, tenant_id: str, subscription_id: str, item_id: str):
        self.id = tenant_id
        self.subscription_id = subscription_id
        self.item_id = item_id
        self.plan = "starter"
        self.seats = 1


class Staff:
    def __init__(self, fleet: FleetProcesses):
        self.fleet = fleet
        self.stripe = fleet.stripe
        self.prices = {plan: fleet.price(plan) for plan in ("starter", "pro")}

    def sign_up(self, tenant_id: str) -> Tenant:
        _, sub = self.fleet.staff_signup(tenant_id, "starter")
        return Tenant(tenant_id, sub.id, sub["items"].data[0].id)

    def change(self, tenant: Tenant) -> tuple[float, float, float, tuple]:
        """Switch the price (starter<->pro) and add a seat; returns (started, started_wall, returned,
        expected webhook key for the bare receiver). The tenant's expected state is updated."""
        tenant.plan = "pro" if tenant.plan == "starter" else "starter"
        tenant.seats += 1
        price = self.prices[tenant.plan]
        started, started_wall = time.monotonic(), time.time()
        self.stripe.v1.subscriptions.update(tenant.subscription_id, params={
            "items": [{"id": tenant.item_id, "price": price, "quantity": tenant.seats}],
            "proration_behavior": "none"})
        return started, started_wall, time.monotonic(), (tenant.subscription_id, price, tenant.seats)


# -- phases -------------------------------------------------------------------------------------


def setup_tenants(staff: Staff, watcher: StampedWatcher, n: int) -> tuple[list[Tenant], dict]:
    started = time.monotonic()
    run = uuid.uuid4().hex[:6]
    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        tenants = list(pool.map(staff.sign_up, [f"bench-{run}-{i:04d}" for i in range(n)]))
    created = time.monotonic()
    last = max(watcher.seen(t.id, "starter", 1, timeout=60)["_seen"] for t in tenants)
    return tenants, {"tenants": n, "signups_s": round(created - started, 2),
                     "all_first_entitlements_s": round(last - started, 2)}


def quiesce(emulator: EmulatorServer, quiet_s: float = 1.0) -> None:
    """Wait until Stripe has nothing left to deliver and the fleet had time to drain it."""
    emulator.wait_for_deliveries_idle(30)
    time.sleep(quiet_s)


def latency_phase(staff: Staff, watcher: StampedWatcher, receiver: BareReceiver, tenants: list[Tenant],
                  m: int, jitter_s: float) -> dict:
    pipeline, delivery, api, to_outbox, outbox_to_bus = [], [], [], [], []
    pause = random.Random(7)
    for i in range(m):
        # Without a pause the next change starts right after the relay's last pass, in lock-step
        # with its polling period, and every sample would see the same (worst) relay wait.
        time.sleep(pause.uniform(0, jitter_s))
        tenant = tenants[i % len(tenants)]
        started, started_wall, returned, key = staff.change(tenant)
        event = watcher.seen(tenant.id, tenant.plan, tenant.seats, timeout=60)
        pipeline.append(event["_seen"] - started)
        api.append(returned - started)
        # The CloudEvents `time` is when the handler wrote the outbox row: it splits the path into
        # Stripe -> ingress -> queue -> handler, and outbox -> relay -> bus -> consumer.
        written = datetime.fromisoformat(event["time"].replace("Z", "+00:00")).timestamp()
        to_outbox.append(written - started_wall)
        outbox_to_bus.append(event["_seen_wall"] - written)
        arrived = receiver.seen(key, timeout=10)
        if arrived is not None:
            delivery.append(arrived - started)
    return {"changes": m, "end_to_end": percentiles(pipeline), "baseline_webhook_delivery": percentiles(delivery),
            "stripe_api_call": percentiles(api),
            "split": {"change_to_outbox_row": percentiles(to_outbox),
                      "outbox_row_to_consumer": percentiles(outbox_to_bus)},
            "over_target": sum(1 for x in pipeline if x >= TARGET_P99_S)}


def burst_phase(staff: Staff, watcher: StampedWatcher, fleet: FleetProcesses, counter: StripeRequestCounter,
                ingress_endpoint: str, tenants: list[Tenant], k: int) -> dict:
    emulator = fleet.emulator
    plan = defaultdict(list)   # client thread -> tenants' changes in order
    for j in range(k):
        plan[(j % len(tenants)) % CLIENT_THREADS].append(tenants[j % len(tenants)])
    last_change: dict[str, float] = {}

    def click(changes: list[Tenant]) -> None:
        for tenant in changes:
            started, _, _, _ = staff.change(tenant)
            last_change[tenant.id] = started

    before = counter.snapshot()
    cpu_before, machine_before = cpu_seconds(fleet), machine_cpu()
    started = time.monotonic()
    wall_start = time.time()
    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        list(pool.map(click, plan.values()))
    calls_done = time.monotonic()
    touched = {t.id: t for t in tenants if t.id in last_change}
    final_seen = {t.id: watcher.seen(t.id, t.plan, t.seats, timeout=90)["_seen"] for t in touched.values()}
    finished = max(final_seen.values())
    cpu_after, machine_after = cpu_seconds(fleet), machine_cpu()
    busy, total = (after - before for after, before in zip(machine_after, machine_before, strict=True))
    quiesce(emulator, 2.0)   # late events of the burst (none expected after the final state) count too
    requests = counter.snapshot() - before
    events = watcher.changes_since(started, set(touched))
    webhooks = [a for a in emulator.deliveries if a["endpoint"] == ingress_endpoint and a["at"] >= wall_start]
    delivered = sum(1 for a in webhooks if a["status"] == 200)
    fleet_reads = requests[("fleet", "GET")]
    elapsed = finished - started
    return {
        "changes": k, "tenants": len(touched), "client_threads": CLIENT_THREADS,
        "stripe_accepted_changes_per_s": round(k / (calls_done - started), 1),
        "until_last_final_state_s": round(elapsed, 2),
        "changes_per_s": round(k / elapsed, 1),
        "entitlement_events": len(events),
        "events_per_s": round(len(events) / elapsed, 1),
        "events_per_change": round(len(events) / k, 3),
        "final_state_lag_after_last_change": percentiles([final_seen[t] - last_change[t] for t in touched]),
        "webhooks_delivered_to_ingress": delivered,
        "webhook_attempts_to_ingress": len(webhooks),
        "fleet_stripe_requests": {method: n for (who, method), n in requests.items() if who == "fleet"},
        "fleet_stripe_reads_per_webhook": round(fleet_reads / delivered, 2) if delivered else None,
        "cpu_s": {name: round(cpu_after[name] - cpu_before[name], 2) for name in cpu_after if name in cpu_before},
        "machine_cpu_busy": round(busy / total, 3) if total else None,
    }


# -- main ---------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=50)
    parser.add_argument("--changes", type=int, default=200, help="sequential changes (latency)")
    parser.add_argument("--burst", type=int, default=500, help="changes in the burst (throughput)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the roles' logs (printed path)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))   # run the finally blocks on kill too

    prefix = f"bench-sync-{uuid.uuid4().hex[:6]}"
    tmp = Path(tempfile.mkdtemp(prefix="sync-bench-"))
    defaults = Settings.model_fields
    db_url, drop = temporary_database(PG_URL)
    emulator = fleet = watcher = receiver = None
    ok = False
    try:
        emulator = EmulatorServer().start()
        counter = StripeRequestCounter(emulator, FLEET_KEY)
        ensure_catalog(StripeGateway("sk_test_seed", api_base=emulator.url), load_catalog(DEFAULT_CATALOG))
        env = fleet_env(database_url=db_url, broker_url=REDIS_URL, prefix=prefix, stripe_api_base=emulator.url,
                        webhook_secrets=SECRET, api_token="bench-token", BILLING_STRIPE_API_KEY=FLEET_KEY,
                        BILLING_STRIPE_RATE_LIMIT=str(STRIPE_RATE_LIMIT), BILLING_LOG_LEVEL="INFO",
                        # production defaults, not the e2e tests' faster polling
                        BILLING_RELAY_POLL_INTERVAL_S=str(defaults["relay_poll_interval_s"].default))
        fleet = FleetProcesses(tmp, env, emulator)
        fleet.start_all(roles=("ingress", "worker", "relay"), worker_threads=WORKER_THREADS)
        watcher = StampedWatcher(REDIS_URL, prefix)
        receiver = BareReceiver()
        ingress = emulator.add_webhook_endpoint(f"{fleet.ingress_url}/webhooks/stripe", SECRET)
        emulator.add_webhook_endpoint(receiver.url, "whsec_unused")
        staff = Staff(fleet)
        print(f"fleet up (ingress, worker x{WORKER_THREADS} threads, relay) on {db_url.rsplit('/', 1)[1]}, "
              f"Redis {REDIS_URL} prefix {prefix}; Stripe rate limit {STRIPE_RATE_LIMIT}/s; logs in {tmp}", flush=True)

        tenants, setup = setup_tenants(staff, watcher, args.tenants)
        print(f"setup: {setup}", flush=True)
        quiesce(emulator)
        latency = latency_phase(staff, watcher, receiver, tenants, args.changes,
                                jitter_s=float(env["BILLING_RELAY_POLL_INTERVAL_S"]))
        print(f"latency: end to end {latency['end_to_end']}", flush=True)
        quiesce(emulator)
        burst = burst_phase(staff, watcher, fleet, counter, ingress["id"], tenants, args.burst)
        report = {
            "benchmark": "Stripe dashboard change -> billing.entitlements.changed on billing.events, real processes",
            "params": {"tenants": args.tenants, "changes": args.changes, "burst": args.burst,
                       "client_threads": CLIENT_THREADS, "worker": f"1 process x {WORKER_THREADS} threads",
                       "stripe_rate_limit_per_s": STRIPE_RATE_LIMIT, "broker": "redis", "database": "postgresql",
                       "relay_poll_interval_s": float(env["BILLING_RELAY_POLL_INTERVAL_S"])},
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "target_p99_ms": TARGET_P99_S * 1000,
            "setup": setup, "latency": latency,
            "pipeline_adds_p50_ms": round(latency["end_to_end"]["p50_ms"]
                                          - latency["baseline_webhook_delivery"]["p50_ms"], 1),
            "burst": burst, "memory": memory(fleet),
        }
        print_report(report)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {RESULTS}")
        ok = True
        return 0 if report["latency"]["end_to_end"]["p99_ms"] < TARGET_P99_S * 1000 else 1
    finally:
        if not ok and fleet is not None:
            print(fleet.logs(2000), file=sys.stderr)
        for close in (watcher and watcher.close, fleet and fleet.close, receiver and receiver.close,
                      emulator and emulator.stop):
            if close:
                try:
                    close()
                except Exception as exc:  # keep cleaning up
                    print(f"cleanup: {type(exc).__name__}: {exc}", file=sys.stderr)
        drop()
        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)
        if ok and not args.keep_logs:
            for log in tmp.glob("*.log"):
                log.unlink()
            tmp.rmdir()


if __name__ == "__main__":
    sys.exit(main())
