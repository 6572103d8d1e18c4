"""Webhook deliveries: signed like Stripe's, sent from background threads, retried with backoff.

Signature: `Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "{t}.{payload}" keyed by the
endpoint secret>`, which `stripe.Webhook.construct_event(payload, header, secret)` verifies.
Like Stripe, no order is promised (several deliveries are in flight at once); the fault knobs
add duplicates (`duplicate_deliveries`) and shuffling (`reorder_window`). A non-2xx answer or a
connection error is retried after `webhook_retry_backoff_s`, doubling, up to
`webhook_max_attempts` attempts in all.
"""
from __future__ import annotations

import hashlib
import heapq
import hmac
import itertools
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

log = logging.getLogger("billing_sync_emulator.webhooks")


def sign(payload: str, secret: str, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


@dataclass
class Delivery:
    event_id: str
    event_type: str
    endpoint_id: str
    url: str
    secret: str
    payload: str
    attempt: int = 0


class Dispatcher:
    def __init__(self, store, faults, workers: int = 8):
        self.store = store
        self.faults = faults
        self._cond = threading.Condition()
        self._heap: list = []
        self._seq = itertools.count()
        self._pending = 0
        self._stopped = False
        self.attempts: deque = deque(maxlen=20000)   # every attempt, for tests and /_emulator/deliveries
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="emulator-webhook")
        self._thread = threading.Thread(target=self._loop, name="emulator-webhooks", daemon=True)
        self._thread.start()

    # -- called by the store when an event is emitted (under the store lock) ---------------------

    def on_event(self, event: dict) -> int:
        endpoints = [e for e in self.store.all("webhook_endpoint")
                     if not e.get("_deleted") and e["status"] == "enabled"
                     and ("*" in e["enabled_events"] or event["type"] in e["enabled_events"])]
        if not endpoints:
            return 0
        payload = json.dumps({**event, "pending_webhooks": len(endpoints)}, indent=2)
        for endpoint in endpoints:
            for _ in range(1 + max(0, int(self.faults.duplicate_deliveries or 0))):
                delivery = Delivery(event["id"], event["type"], endpoint["id"], endpoint["url"],
                                    endpoint["_secret"], payload)
                self._push(delivery, self.faults.shuffle_delay(), new=True)
        return len(endpoints)

    def _push(self, delivery: Delivery, delay: float, *, new: bool) -> None:
        with self._cond:
            if new:
                self._pending += 1
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), delivery))
            self._cond.notify_all()

    # -- the sender -----------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(timeout)
                if self._stopped:
                    return
                _, _, delivery = heapq.heappop(self._heap)
            try:
                self._pool.submit(self._send, delivery)
            except RuntimeError:   # pool shut down while stopping
                return

    def _send(self, delivery: Delivery) -> None:
        delivery.attempt += 1
        status, error = None, None
        try:
            request = urllib.request.Request(delivery.url, data=delivery.payload.encode(), method="POST", headers={
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                "Stripe-Signature": sign(delivery.payload, delivery.secret),
            })
            with urllib.request.urlopen(request, timeout=self.faults.webhook_timeout_s) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except Exception as exc:  # connection refused, timeout…: Stripe retries those too
            error = type(exc).__name__
        ok = status is not None and 200 <= status < 300
        self.attempts.append({"event": delivery.event_id, "type": delivery.event_type,
                              "endpoint": delivery.endpoint_id, "attempt": delivery.attempt,
                              "status": status, "error": error, "at": time.time()})
        if ok or delivery.attempt >= self.faults.webhook_max_attempts or self._stopped:
            if not ok:
                log.warning("webhook gave up: event=%s type=%s endpoint=%s attempts=%s status=%s error=%s",
                            delivery.event_id, delivery.event_type, delivery.endpoint_id, delivery.attempt,
                            status, error)
            with self._cond:
                self._pending -= 1
                self._cond.notify_all()
            return
        backoff = min(self.faults.webhook_retry_backoff_s * 2 ** (delivery.attempt - 1),
                      self.faults.webhook_retry_max_backoff_s)
        self._push(delivery, backoff, new=False)

    # -- control --------------------------------------------------------------------------------

    def pending(self) -> int:
        with self._cond:
            return self._pending

    def wait_idle(self, timeout: float | None = None) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._pending == 0, timeout)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._heap.clear()
            self._pending = 0
            self._cond.notify_all()
        self._pool.shutdown(wait=False, cancel_futures=True)
