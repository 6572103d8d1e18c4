"""`billing-sync demo`: start the fleet and play a two-way story, printing its timeline.

Every step waits for the evidence a product service would see — an outcome event, an
entitlements event, a read-API answer, or the object in Stripe — and the demo exits 0 only when
every step was observed. In-app actions are commands on `billing.commands`; support staff act
directly on the Stripe API (the emulator's), as they would in the dashboard.
"""
from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import cast

import httpx
import stripe
from kombu import Queue

from .client import publish_command
from .config import bus
from .config.settings import get_settings
from .demo_quota import start_quota_story
from .demo_selfserve import self_serve_steps
from .fleet import Fleet

STEP_TIMEOUT_S = 20.0


class EventWatcher:
    """Collects everything published on billing.events, as a product service would."""

    def __init__(self, url: str, prefix: str | None = None):
        self.events: list[dict] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._conn = bus.connect(url)
        self._queue = Queue(f"demo-{uuid.uuid4().hex[:6]}", bus.events_exchange(prefix), routing_key="#",
                            durable=False, auto_delete=True)
        self._queue(self._conn.default_channel).declare()
        self._thread = threading.Thread(target=self._consume, name="demo-events", daemon=True)
        self._thread.start()

    def _consume(self) -> None:
        accept = ["json", bus.CLOUDEVENTS_CONTENT_TYPE]
        with self._conn.Consumer(self._queue, callbacks=[self._on_message], accept=accept):
            while not self._stop.is_set():
                # OSError: nothing within the timeout (TimeoutError and socket.timeout are OSErrors)
                with contextlib.suppress(OSError):
                    self._conn.drain_events(timeout=0.2)

    def _on_message(self, body, message) -> None:
        event = body if isinstance(body, dict) else json.loads(body)
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()
        message.ack()

    def mark(self) -> int:
        """A position in the stream: `wait_for(..., since=mark)` ignores what came before it."""
        with self._cond:
            return len(self.events)

    def wait_for(self, predicate: Callable[[dict], bool], timeout: float = STEP_TIMEOUT_S, since: int = 0) -> dict:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events[since:]:
                    if predicate(event):
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("no matching event on billing.events")
                self._cond.wait(remaining)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        # kombu's Redis emulation keeps an auto_delete queue bound; drop it and its binding
        with contextlib.suppress(Exception):
            self._queue(self._conn.default_channel).delete()
        self._conn.release()


class Timeline:
    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.failures = 0

    def step(self, title: str, action: Callable[[], str]) -> None:
        started = time.monotonic()
        try:
            detail = action()
        except Exception as exc:  # one failed step must not hide the rest of the story
            self.failures += 1
            print(f"[{started - self.t0:6.2f}s] FAIL {title}: {type(exc).__name__}: {exc}", flush=True)
            return
        took = time.monotonic() - started
        print(f"[{started - self.t0:6.2f}s] ok   {title} ({took * 1000:.0f} ms) — {detail}", flush=True)


def _is(event: dict, type: str, **data) -> bool:
    return event.get("type") == type and all(event["data"].get(k) == v for k, v in data.items())


def run_demo(host: str = "127.0.0.1", port: int = 0) -> int:
    settings = get_settings()
    updates: dict = {"stripe_test_clocks": True}
    if settings.database_url == type(settings).model_fields["database_url"].default:
        db = Path("var/demo.db")
        for leftover in db.parent.glob("demo.db*"):
            leftover.unlink()
        updates["database_url"] = f"sqlite:///{db}"
    settings = settings.model_copy(update=updates)
    if not settings.uses_emulator:
        print("billing-sync demo plays its story against the bundled emulator; unset BILLING_STRIPE_*")
        return 2

    with Fleet(settings, host=host, port=port) as fleet:
        watcher = EventWatcher(fleet.settings.event_bus_url, fleet.settings.queue_prefix)
        try:
            return _play(fleet, watcher)
        finally:
            watcher.close()


def _play(fleet: Fleet, watcher: EventWatcher) -> int:
    s = fleet.settings
    if fleet.emulator is None:
        raise RuntimeError("the demo plays against the bundled Stripe emulator")
    emulator = fleet.emulator
    dashboard = stripe.StripeClient("sk_test_support_staff", base_addresses={"api": emulator.url})
    api = httpx.Client(base_url=fleet.ingress_url,
                       headers={"Authorization": f"Bearer {s.api_tokens[0].get_secret_value()}"})
    timeline = Timeline()
    tenant = f"acme-{uuid.uuid4().hex[:4]}"
    print(f"billing-sync demo: fleet on {fleet.ingress_url}, Stripe emulator on {emulator.url}")

    def command(type: str, data: dict) -> str:
        return publish_command(s.event_bus_url, type, data["tenant_id"], data, queue_prefix=s.queue_prefix)

    def outcome(command_id: str) -> dict:
        return watcher.wait_for(lambda e: e["type"].startswith("billing.command.")
                                and e["data"].get("command_id") == command_id)

    def entitlements(since: int, **data) -> dict:
        return watcher.wait_for(lambda e: _is(e, "billing.entitlements.changed", tenant_id=tenant, **data),
                                since=since)

    def subscription() -> stripe.Subscription:
        customer = dashboard.v1.customers.search(params={"query": f"metadata['tenant_id']:'{tenant}'"}).data[0]
        return dashboard.v1.subscriptions.list(params={"customer": customer.id, "status": "all"}).data[0]

    def signup() -> str:
        mark = watcher.mark()
        cid = command("billing.tenant.provisioned", {
            "tenant_id": tenant, "name": "Acme Inc.", "email": "billing@acme.test",
            "plan": "starter", "seats": 2, "payment_method": "pm_card_visa"})
        done = outcome(cid)
        assert done["type"] == "billing.command.completed", done
        sub = subscription()
        assert sub.status == "active", sub.status
        ent = entitlements(mark, plan="starter")
        return f"customer and {sub.status} subscription in Stripe; entitlements v{ent['data']['version']} plan=starter"

    def staff_upgrade() -> str:
        mark = watcher.mark()
        sub = subscription()
        pro = dashboard.v1.prices.list(params={"lookup_keys": ["pro_monthly"]}).data[0]
        dashboard.v1.subscriptions.update(sub.id, params={
            "items": [{"id": sub["items"].data[0].id, "price": pro.id}], "proration_behavior": "none"})
        ent = entitlements(mark, plan="pro")
        return f"support staff switched the price in Stripe; entitlements v{ent['data']['version']} plan=pro"

    def add_seats() -> str:
        mark = watcher.mark()
        done = outcome(command("billing.subscription.change", {"tenant_id": tenant, "seats": 5}))
        assert done["type"] == "billing.command.completed", done
        ent = watcher.wait_for(lambda e: _is(e, "billing.entitlements.changed", tenant_id=tenant)
                               and e["data"]["limits"].get("seats") == 5, since=mark)
        return f"quantity 5 in Stripe; entitlements v{ent['data']['version']} seats=5"

    def record_usage() -> str:
        done = outcome(command("billing.usage.recorded", {
            "tenant_id": tenant, "meter": "api_calls", "quantity": 1200,
            "timestamp": int(time.time())}))
        assert done["type"] == "billing.command.completed", done
        check = api.get(f"/v1/tenants/{tenant}/entitlements/api_calls").raise_for_status().json()
        assert check["used"] == 1200, check
        return f"meter event sent; quota check used={check['used']} remaining={check['remaining']}"

    def card_declined() -> str:
        other = f"globex-{uuid.uuid4().hex[:4]}"
        cid = command("billing.tenant.provisioned", {
            "tenant_id": other, "name": "Globex", "email": "ap@globex.test", "plan": "pro",
            "payment_method": "pm_card_chargeDeclined"})
        failed = outcome(cid)
        assert failed["type"] == "billing.command.failed", failed
        assert failed["data"]["reason"] == "card_declined", failed
        return "billing.command.failed reason=card_declined"

    def cancel_at_period_end() -> str:
        done = outcome(command("billing.subscription.cancel", {"tenant_id": tenant, "at_period_end": True}))
        assert done["type"] == "billing.command.completed", done
        deadline = time.monotonic() + STEP_TIMEOUT_S
        while not subscription().cancel_at_period_end:
            assert time.monotonic() < deadline, "cancel_at_period_end never set"
            time.sleep(0.05)
        snapshot = api.get(f"/v1/tenants/{tenant}/entitlements").raise_for_status().json()
        assert snapshot["plan"] == "pro", snapshot
        return f"cancels at period end; plan stays {snapshot['plan']} until then"

    def period_ends() -> str:
        mark = watcher.mark()
        sub = subscription()
        customer = dashboard.v1.customers.retrieve(cast(str, sub.customer))  # not expanded: an id
        period_end = sub["items"].data[0].current_period_end
        dashboard.v1.test_helpers.test_clocks.advance(cast(str, customer.test_clock),
                                                      params={"frozen_time": period_end + 3600})
        ent = entitlements(mark, plan="free")
        return f"test clock passed the period end; entitlements v{ent['data']['version']} plan=free"

    quota_story = start_quota_story(api, command, watcher)  # its tenant signs up meanwhile
    timeline.step("tenant signs up in-app", signup)
    timeline.step("support staff upgrade the plan in the Stripe dashboard", staff_upgrade)
    timeline.step("tenant adds seats in-app", add_seats)
    timeline.step("tenant records usage in-app; quota check", record_usage)
    quota_story(timeline.step)
    timeline.step("another tenant signs up with a declined card", card_declined)
    timeline.step("tenant cancels at period end", cancel_at_period_end)
    timeline.step("the period ends", period_ends)
    self_serve_steps(timeline.step, api, dashboard, emulator.url)
    api.close()
    if timeline.failures:
        print(f"billing-sync demo: {timeline.failures} step(s) not observed")
        return 1
    print(f"billing-sync demo: every step observed in {time.monotonic() - timeline.t0:.1f}s")
    return 0
