"""The emulator's HTTP face: a stdlib ThreadingHTTPServer speaking Stripe's v1 wire format.

`EmulatorServer(...).start()` serves from a background thread (starts in milliseconds; run as
many as you like in one process); `serve(...)` is the blocking form behind
`billing-sync emulator`. What one request does is `api.handle` (emulator/api.py).
"""
from __future__ import annotations

import json
import logging
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import (
    api,
    resources,  # noqa: F401  (registers the routes)
)
from .billing import render
from .faults import Faults
from .ids import new_id
from .resources import billing_meters, catalog
from .resources.webhook_endpoints import new_endpoint
from .store import Store, public
from .webhooks import Dispatcher

log = logging.getLogger("billing_sync_emulator")


class EmulatorServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, webhook_url: str | None = None,
                 webhook_secret: str = "whsec_emulator", *, seed: int | None = None,
                 account_id: str | None = None):
        self.account_id = account_id or new_id("acct", 16)   # `GET /v1/account`: this instance's own
        self.started_at = int(time.time())
        self.state = Store()
        self.faults = Faults(seed=seed)
        self.state.faults = self.faults
        self.state.renderers = {
            "subscription": lambda o: render.render_subscription(self.state, o),
            "subscription_item": lambda o: render.render_item(self.state, o),
            "product_feature": lambda o: catalog.render_product_feature(self.state, o),
            "billing.meter_event": billing_meters.render_meter_event,
        }
        self.dispatcher = Dispatcher(self.state, self.faults)
        self.state.on_event = self.dispatcher.on_event
        self._httpd = ThreadingHTTPServer((host, port), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None
        if webhook_url:
            self.add_webhook_endpoint(webhook_url, webhook_secret)

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host if isinstance(host, str) else host.decode()}:{port}"

    def start(self) -> EmulatorServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="emulator-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread = None
        self._httpd.server_close()
        self.dispatcher.stop()

    def __enter__(self) -> EmulatorServer:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- test helpers ---------------------------------------------------------------------------

    def add_webhook_endpoint(self, url: str, secret: str, enabled_events=("*",)) -> dict:
        with self.state.lock:
            endpoint = new_endpoint(self.state, url, secret, enabled_events)
            return {**public(endpoint), "secret": secret}

    def wait_for_deliveries_idle(self, timeout: float = 10.0) -> bool:
        """True once no webhook delivery is pending (retries included); False on timeout."""
        return self.dispatcher.wait_idle(timeout)

    def wait_for_clock(self, clock_id: str, timeout: float = 10.0) -> bool:
        """True once the test clock has finished advancing."""
        with self.state.clock_ready:
            return self.state.clock_ready.wait_for(
                lambda: (self.state.get("test_helpers.test_clock", clock_id) or {}).get("status") != "advancing",
                timeout)

    @property
    def deliveries(self) -> list[dict]:
        """Every webhook delivery attempt so far: event, type, endpoint, attempt, status, error."""
        return list(self.dispatcher.attempts)

    def events(self, type_: str | None = None) -> list[dict]:
        """Emitted events, oldest first (a shortcut for assertions)."""
        with self.state.lock:
            found = sorted(self.state.all("event"), key=lambda e: e["_seq"])
            return [public(e) for e in found if type_ is None or e["type"] == type_]

    def reset(self) -> None:
        """Forget every object, event and idempotency key; webhook endpoints survive."""
        with self.state.lock:
            endpoints = self.state.all("webhook_endpoint")
            self.state.reset()
            for endpoint in endpoints:
                self.state.add(endpoint)

    # -- request handling (transport-free, so it is easy to reason about: emulator/api.py) -------

    def handle(self, method: str, target: str, headers, body: bytes) -> tuple[int, dict, dict]:
        """(status, headers, JSON body) of one request, API or `/_emulator` control."""
        return api.handle(self, method, target, headers, body)


def _handler_for(emulator: EmulatorServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"   # keep-alive: the SDK reuses connections
        disable_nagle_algorithm = True  # headers and body go out in separate writes; no 40 ms stalls
        server_version = "billing-sync-emulator"

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            try:
                status, headers, payload = emulator.handle(method, self.path, self.headers, body)
            except Exception:  # a bug in the emulator: answer like Stripe's 500, keep serving
                log.exception("emulator error on %s %s", method, self.path)
                status, headers = 500, {"Stripe-Should-Retry": "true"}
                payload = {"error": {"type": "api_error", "message": "Internal error in the Stripe emulator."}}
            raw = json.dumps(payload, indent=2).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self):
            self._serve("GET")

        def do_POST(self):
            self._serve("POST")

        def do_DELETE(self):
            self._serve("DELETE")

        def log_message(self, fmt, *args):  # request lines at debug level only
            log.debug("emulator %s", fmt % args)

    return Handler


def serve(host: str = "127.0.0.1", port: int = 12111, webhook_url: str | None = None,
          webhook_secret: str = "whsec_emulator", account_id: str | None = None) -> None:
    """Run the emulator in the foreground until interrupted (`billing-sync emulator`)."""
    server = EmulatorServer(host, port, webhook_url, webhook_secret, account_id=account_id)
    stop = threading.Event()

    def on_signal(*_):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.start()
    print(f"Stripe emulator ({server.account_id}) listening on {server.url}"
          + (f", sending webhooks to {webhook_url}" if webhook_url else ""), flush=True)
    try:
        stop.wait()
    finally:
        server.stop()
