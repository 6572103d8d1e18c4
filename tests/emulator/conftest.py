"""Fixtures for the emulator's own tests: a fresh emulator per test, an SDK client pointed at it,
a tiny webhook receiver, and a small catalog."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import stripe

from billing_sync_emulator.server import EmulatorServer


@pytest.fixture
def emulator():
    with EmulatorServer(seed=7) as server:
        server.faults.webhook_retry_backoff_s = 0.05
        server.faults.webhook_retry_max_backoff_s = 0.2
        yield server


@pytest.fixture
def client(emulator):
    return stripe.StripeClient("sk_test_emulator_tests", base_addresses={"api": emulator.url}, max_network_retries=0)


class Receiver:
    """A webhook endpoint that records every delivery; `statuses` scripts its next answers."""

    def __init__(self):
        self.requests: list[tuple[dict, str]] = []
        self.statuses: list[int] = []
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                with receiver._cond:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver.requests.append((dict(self.headers), body))
                    receiver._cond.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/webhooks"
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def events(self) -> list[dict]:
        with self._cond:
            return [json.loads(body) for _, body in self.requests]

    def types(self) -> list[str]:
        return [e["type"] for e in self.events()]

    def wait_for(self, predicate, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def close(self):
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def catalog(client):
    """Two plans (prices by lookup key) whose products carry entitlement features."""
    features = {key: client.v1.entitlements.features.create(params={"name": key.title(), "lookup_key": key})
                for key in ("dashboard", "exports", "sso")}
    starter = client.v1.products.create(params={"id": "prod_starter", "name": "Starter",
                                                "metadata": {"plan": "starter"}})
    pro = client.v1.products.create(params={"id": "prod_pro", "name": "Pro", "metadata": {"plan": "pro"}})
    for product, keys in ((starter, ("dashboard", "exports")), (pro, ("dashboard", "exports", "sso"))):
        for key in keys:
            client.v1.products.features.create(product.id, params={"entitlement_feature": features[key].id})
    prices = {
        "starter": client.v1.prices.create(params={"product": starter.id, "unit_amount": 1900, "currency": "usd",
                                                   "recurring": {"interval": "month"},
                                                   "lookup_key": "starter_monthly"}),
        "pro": client.v1.prices.create(params={"product": pro.id, "unit_amount": 4900, "currency": "usd",
                                               "recurring": {"interval": "month"}, "lookup_key": "pro_monthly"}),
        "addon": client.v1.prices.create(params={"product_data": {"name": "Extra storage"}, "unit_amount": 500,
                                                 "currency": "usd", "recurring": {"interval": "month"}}),
    }
    return {"features": features, "products": {"starter": starter, "pro": pro}, "prices": prices}


def new_customer(client, pm: str | None = "pm_card_visa", **params):
    if pm:
        params.update({"payment_method": pm, "invoice_settings": {"default_payment_method": pm}})
    return client.v1.customers.create(params=params)


def act(emulator, path: str, body: dict | None = None) -> tuple[int, dict]:
    """POST a JSON body to one of the emulator's `/_emulator/…` controls; (status, answer)."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(f"{emulator.url}{path}", data=json.dumps(body or {}).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
