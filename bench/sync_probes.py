"""How the sync benchmark observes both ends of the path: billing.events as a product service sees
them (StampedWatcher), Stripe's own webhook delivery to a bare receiver (BareReceiver, the
baseline), and the Stripe requests the fleet makes (StripeRequestCounter)."""
from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from billing_sync.demo import EventWatcher
from billing_sync_emulator.server import EmulatorServer

CHANGED = "billing.entitlements.changed"


class StampedWatcher(EventWatcher):
    """billing.events as a product service sees them, each stamped with when it arrived here, and
    indexed by (tenant, plan, seats) so a wait is a dictionary lookup."""

    def __init__(self, url: str, prefix: str):
        self.by_state: dict[tuple, dict] = {}
        super().__init__(url, prefix)

    def _on_message(self, body, message) -> None:
        event = body if isinstance(body, dict) else json.loads(body)
        event["_seen"], event["_seen_wall"] = time.monotonic(), time.time()
        if event.get("type") == CHANGED:
            data = event["data"]
            self.by_state.setdefault((data["tenant_id"], data["plan"], data["limits"].get("seats")), event)
        super()._on_message(event, message)

    def seen(self, tenant: str, plan: str, seats: int, timeout: float) -> dict:
        """The entitlements event for that state, stamped `_seen` (monotonic) and `_seen_wall` when
        it arrived here; TimeoutError if it does not come."""
        key = (tenant, plan, seats)
        deadline = time.monotonic() + timeout
        with self._cond:
            while key not in self.by_state:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no {CHANGED} for {key} within {timeout}s")
                self._cond.wait(remaining)
            return self.by_state[key]

    def changes_since(self, since: float, tenants: set[str]) -> list[dict]:
        with self._cond:
            return [e for e in self.events if e.get("type") == CHANGED and e["_seen"] >= since
                    and e["data"]["tenant_id"] in tenants]


class BareReceiver:
    """The baseline: a webhook endpoint that only notes when each subscription event arrived."""

    def __init__(self):
        self.arrivals: dict[tuple, float] = {}   # (subscription id, price id, quantity) -> first arrival
        self.cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                seen = time.monotonic()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                receiver.note(json.loads(body), seen)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/webhooks"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    def note(self, event: dict, seen: float) -> None:
        obj = event.get("data", {}).get("object", {})
        if obj.get("object") != "subscription":
            return
        item = obj["items"]["data"][0]
        with self.cond:
            self.arrivals.setdefault((obj["id"], item["price"]["id"], item["quantity"]), seen)
            self.cond.notify_all()

    def seen(self, key: tuple, timeout: float) -> float | None:
        with self.cond:
            self.cond.wait_for(lambda: key in self.arrivals, timeout)
            return self.arrivals.get(key)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class StripeRequestCounter:
    """Counts emulator API requests by (who, method): the fleet (its API key) or support staff."""

    def __init__(self, emulator: EmulatorServer, fleet_key: str):
        self.counts: Counter = Counter()
        self._lock = threading.Lock()
        handle = emulator.handle

        def counting(method, target, headers, body):
            if not target.startswith("/_emulator"):
                who = "fleet" if fleet_key in (headers.get("Authorization") or "") else "staff"
                with self._lock:
                    self.counts[(who, method)] += 1
            return handle(method, target, headers, body)

        emulator.handle = counting   # the HTTP handler looks it up per request

    def snapshot(self) -> Counter:
        with self._lock:
            return Counter(self.counts)
