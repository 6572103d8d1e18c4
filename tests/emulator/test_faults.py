"""Fault knobs: rate limit (429), random 500s, latency; set in process or over HTTP."""
from __future__ import annotations

import time

import httpx
import pytest
import stripe


def test_rate_limit_answers_429_like_stripe(client, emulator):
    emulator.faults.rate_limit_per_s = 5
    outcomes = []
    for _ in range(12):
        try:
            client.v1.customers.list()
            outcomes.append("ok")
        except stripe.RateLimitError as exc:
            assert exc.http_status == 429
            assert exc.json_body["error"]["code"] == "rate_limit"
            outcomes.append("429")
    assert outcomes.count("ok") <= 5 + 5 and "429" in outcomes   # at most one window boundary crossed
    emulator.faults.rate_limit_per_s = None
    client.v1.customers.list()


def test_error_ratio_gives_500_api_error_and_changes_nothing(client, emulator):
    emulator.faults.error_ratio = 1.0
    with pytest.raises(stripe.APIError) as err:
        client.v1.customers.create(params={"name": "never"})
    assert err.value.http_status == 500 and err.value.json_body["error"]["type"] == "api_error"
    emulator.faults.error_ratio = 0.0
    assert client.v1.customers.list().data == []


def test_error_ratio_is_seeded(client, emulator):
    def run():
        emulator.faults.seed = 42
        emulator.faults.error_ratio = 0.5
        out = []
        for _ in range(20):
            try:
                client.v1.customers.list()
                out.append(1)
            except stripe.APIError:
                out.append(0)
        emulator.faults.error_ratio = 0.0
        return out

    first = run()
    assert 0 < sum(first) < 20 and run() == first


def test_latency(client, emulator):
    emulator.faults.latency_ms = 150
    started = time.monotonic()
    client.v1.customers.list()
    assert time.monotonic() - started >= 0.15


def test_faults_over_http(emulator):
    answer = httpx.post(f"{emulator.url}/_emulator/faults", json={"error_ratio": 1.0, "latency_ms": 5})
    assert answer.json()["error_ratio"] == 1.0
    assert emulator.faults.error_ratio == 1.0 and emulator.faults.latency_ms == 5
    assert httpx.get(f"{emulator.url}/v1/customers", auth=("sk_test_x", "")).status_code == 500
    assert httpx.post(f"{emulator.url}/_emulator/faults", json={"bogus": 1}).status_code == 400
    httpx.post(f"{emulator.url}/_emulator/faults", json={"error_ratio": 0})
    assert httpx.get(f"{emulator.url}/v1/customers", auth=("sk_test_x", "")).status_code == 200
