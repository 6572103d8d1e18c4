"""The webhook ingress on real Redis and real RabbitMQ: what is enqueued, and when nothing is."""
from __future__ import annotations

import json
import time

import pytest

from billing_sync.models import make_engine

from ingress_helpers import SECRETS, body_of, closed_port, signed, stripe_event


def post(client, body: bytes, headers: dict):
    return client.post("/webhooks/stripe", content=body, headers=headers)


def test_valid_event_is_enqueued_once_and_a_duplicate_is_accepted_again(ingress_client, real_broker_url, queue):
    client = ingress_client(real_broker_url)
    event = stripe_event()
    body = body_of(event)

    response = post(client, body, signed(body))
    assert response.status_code == 200
    assert response.json() == {"received": True}
    [message] = queue.messages()
    assert message.actor_name == "process_stripe_event"
    assert message.queue_name == queue.queue
    [payload] = message.args
    assert payload["event"] == event
    assert payload["received_at"].endswith("+00:00")

    # Stripe delivers at least once: a redelivery (with a fresh signature) gets 200 as well;
    # the worker's ledger is what makes it a no-op.
    assert post(client, body, signed(body)).status_code == 200
    assert [m.args[0]["event"]["id"] for m in queue.messages()] == [event["id"], event["id"]]


def test_rotated_secret_is_accepted(ingress_client, real_broker_url, queue):
    client = ingress_client(real_broker_url)
    body = body_of(stripe_event())
    assert post(client, body, signed(body, secret=SECRETS[0])).status_code == 200
    assert len(queue.messages()) == 1


@pytest.mark.parametrize("case, status", [
    ("wrong_secret", 400), ("stale", 400), ("no_signature", 400), ("truncated", 400), ("not_json", 400),
    ("not_an_event", 400), ("oversized", 413), ("oversized_chunked", 413),
])
def test_bad_webhooks_get_their_status_and_enqueue_nothing(ingress_client, real_broker_url, queue, case, status):
    client = ingress_client(real_broker_url)
    body = body_of(stripe_event())
    headers = signed(body)
    if case == "wrong_secret":
        headers = signed(body, secret="whsec_not_ours")
    elif case == "stale":
        headers = signed(body, timestamp=int(time.time()) - 301)
    elif case == "no_signature":
        headers = {"Content-Type": "application/json"}
    elif case == "truncated":
        headers, body = signed(body), body[: len(body) // 2]  # signed whole, cut in transit
    elif case == "not_json":
        body = b"this is not json"
        headers = signed(body)
    elif case == "not_an_event":
        body = json.dumps({"id": "cus_123", "object": "customer"}).encode()
        headers = signed(body)
    elif case == "oversized":
        event = stripe_event()
        event["data"]["object"]["padding"] = "x" * (16 * 1024)
        body = body_of(event)
        headers = signed(body)
    elif case == "oversized_chunked":  # no Content-Length: the limit is enforced while reading
        event = stripe_event()
        event["data"]["object"]["padding"] = "x" * (16 * 1024)
        body = body_of(event)
        headers = signed(body)
        chunks = (body[i:i + 1024] for i in range(0, len(body), 1024))
        response = client.post("/webhooks/stripe", content=chunks, headers=headers)
        assert response.status_code == status
        assert queue.messages() == []
        return

    response = post(client, body, headers)
    assert response.status_code == status, response.text
    assert "error" in response.json()
    assert queue.messages() == []


def test_broker_down_gives_503_then_the_redelivery_is_taken_once(ingress_client, down_broker_url,
                                                               real_broker_url, queue):
    event = stripe_event()
    body = body_of(event)

    down = ingress_client(down_broker_url)
    started = time.monotonic()
    response = post(down, body, signed(body))
    assert response.status_code == 503
    assert time.monotonic() - started < 8  # refused quickly, not hung
    assert queue.messages() == []

    # Stripe retries; by then the broker is back (here: an ingress on the live broker).
    up = ingress_client(real_broker_url)
    assert post(up, body, signed(body)).status_code == 200
    assert [m.args[0]["event"]["id"] for m in queue.messages()] == [event["id"]]


def test_healthz_and_readyz(ingress_client, real_broker_url):
    client = ingress_client(real_broker_url)
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "checks": {"database": "ok", "broker": "ok"}}


def test_readyz_503_when_the_broker_is_unreachable(ingress_client, down_broker_url):
    ready = ingress_client(down_broker_url).get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"] == "ok"
    assert ready.json()["checks"]["broker"].startswith("unavailable")


def test_readyz_503_when_the_database_is_unreachable(ingress_client, real_broker_url):
    engine = make_engine(f"postgresql://postgres@127.0.0.1:{closed_port()}/nowhere")
    ready = ingress_client(real_broker_url, engine=engine).get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"].startswith("unavailable")
    assert ready.json()["checks"]["broker"] == "ok"


def test_metrics_count_webhooks_by_outcome(ingress_client, real_broker_url, queue):
    client = ingress_client(real_broker_url)

    def count(outcome: str) -> float:
        for line in client.get("/metrics").text.splitlines():
            if line.startswith(f'billing_webhooks_total{{outcome="{outcome}"}}'):
                return float(line.split()[-1])
        return 0.0

    accepted, bad = count("accepted"), count("bad_signature")
    body = body_of(stripe_event())
    post(client, body, signed(body))
    post(client, body, signed(body, secret="whsec_nope"))
    assert count("accepted") == accepted + 1
    assert count("bad_signature") == bad + 1
    assert "billing_webhook_enqueue_seconds_bucket" in client.get("/metrics").text


def test_webhook_logs_carry_ids_never_the_body_or_signature(ingress_client, real_broker_url, queue, monkeypatch):
    import structlog

    from billing_sync.ingress import app as app_module

    captured = structlog.testing.LogCapture()
    monkeypatch.setattr(app_module, "log", structlog.wrap_logger(None, processors=[captured]))
    client = ingress_client(real_broker_url)
    event = stripe_event()
    event["data"]["object"]["email"] = "secret-person@example.com"
    body = body_of(event)
    headers = signed(body)
    assert post(client, body, headers).status_code == 200
    assert post(client, body, signed(body, secret="whsec_nope")).status_code == 400
    [accepted, rejected] = captured.entries
    assert accepted["event"] == "webhook.accepted" and accepted["event_id"] == event["id"]
    assert rejected["event"] == "webhook.rejected" and rejected["outcome"] == "bad_signature"
    logged = repr(captured.entries)
    assert "secret-person@example.com" not in logged and "sub_123" not in logged
    assert headers["Stripe-Signature"].split("v1=")[1] not in logged
