"""The sync benchmark's figures: percentiles of a list of durations, and the report printed at the
end of a run (the same figures go to bench/results/sync.json)."""
from __future__ import annotations


def percentiles(values: list[float]) -> dict:
    ordered = sorted(values)
    if not ordered:
        return {}

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"n": len(ordered), "p50_ms": round(pick(0.50) * 1000, 1), "p95_ms": round(pick(0.95) * 1000, 1),
            "p99_ms": round(pick(0.99) * 1000, 1), "max_ms": round(ordered[-1] * 1000, 1),
            "mean_ms": round(sum(ordered) / len(ordered) * 1000, 1)}


def print_report(report: dict) -> None:
    lat, burst = report["latency"], report["burst"]
    rate_limit, target_s = report["params"]["stripe_rate_limit_per_s"], report["target_p99_ms"] / 1000
    print(f"\nStripe dashboard change -> billing.entitlements.changed  ({report['params']['tenants']} tenants, "
          f"Stripe rate limit {rate_limit}/s so it is not the bottleneck)")
    print(f"{'one change at a time':40} {'n':>5} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    rows = (("end to end (fleet)", lat["end_to_end"]),
            ("  change -> outbox row written", lat["split"]["change_to_outbox_row"]),
            ("  outbox row -> consumer (relay poll)", lat["split"]["outbox_row_to_consumer"]),
            ("baseline: webhook to a bare receiver", lat["baseline_webhook_delivery"]),
            ("the Stripe API call itself", lat["stripe_api_call"]))
    for name, row in rows:
        print(f"{name:40} {row['n']:>5} {row['p50_ms']:>8} {row['p95_ms']:>8} {row['p99_ms']:>8} {row['max_ms']:>8}")
    verdict = "meets" if lat["end_to_end"]["p99_ms"] < target_s * 1000 else "MISSES"
    print(f"pipeline adds {report['pipeline_adds_p50_ms']} ms at p50 over Stripe's delivery; p99 {verdict} the "
          f"{target_s:.0f} s target")
    lag = burst["final_state_lag_after_last_change"]
    print(f"burst: {burst['changes']} changes over {burst['tenants']} tenants from {burst['client_threads']} threads "
          f"(Stripe took {burst['stripe_accepted_changes_per_s']}/s): all final states published after "
          f"{burst['until_last_final_state_s']} s = {burst['changes_per_s']} changes/s; "
          f"{burst['entitlement_events']} entitlement events ({burst['events_per_change']}/change, "
          f"{burst['events_per_s']}/s); final state {lag['p50_ms']} ms (p50) / {lag['max_ms']} ms (max) after "
          f"a tenant's last change; {burst['fleet_stripe_reads_per_webhook']} Stripe reads per webhook "
          f"({burst['webhooks_delivered_to_ingress']} webhooks)")
    print("burst CPU seconds: " + ", ".join(f"{k} {v}" for k, v in burst["cpu_s"].items())
          + f"; machine {burst['machine_cpu_busy']:.0%} busy over {report['cpus']} CPUs")
    print("memory (VmRSS): " + ", ".join(f"{role} {m['rss_mb']} MB ({m['processes']} proc)"
                                         for role, m in report["memory"].items()))
