"""The demo's quota story (issue 10): a tenant's quota runs out and comes back with an upgrade.

A product service gate-keeps with `POST /v1/tenants/{id}/usage` (check and record in one atomic
step): consumption is allowed, then refused at the plan's limit with nothing recorded, and
allowed again once the tenant upgrades in-app; the usage already spent moves with it to the new
plan. The 80 % and 100 % notices (`billing.usage.threshold_reached`) are seen on billing.events.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx

Step = Callable[[str, Callable[[], str]], None]
STARTER_API_CALLS = 50_000  # config/catalog.yaml: the starter plan's api_calls
PRO_API_CALLS = 500_000


def start_quota_story(api: httpx.Client, command: Callable[[str, dict], str], watcher: Any) -> Callable[[Step], None]:
    """Sign the story's tenant up now (so that it is ready when its turn comes, without holding up
    the demo) and return the story, to run through `step(title, fn)` later. `command(type, data)`
    publishes a product command, `watcher` is the demo's view of billing.events (`mark()`,
    `wait_for(predicate, since=)`)."""
    tenant = f"hooli-{uuid.uuid4().hex[:4]}"
    serial = iter(range(1_000_000))
    signup_mark = watcher.mark()
    signup = command("billing.tenant.provisioned", {"tenant_id": tenant, "name": "Hooli", "email": "ops@hooli.test",
                                                    "plan": "starter", "payment_method": "pm_card_visa"})

    def consume(quantity: int) -> dict:
        response = api.post(f"/v1/tenants/{tenant}/usage", json={
            "feature": "api_calls", "quantity": quantity, "idempotency_key": f"demo-{next(serial)}"})
        return response.raise_for_status().json()

    def event(since: int, type: str, **data) -> dict:
        return watcher.wait_for(lambda e: e.get("type") == type and e["data"].get("tenant_id") == tenant
                                and all(e["data"].get(k) == v for k, v in data.items()), since=since)

    def completed(command_id: str, since: int) -> None:
        done = watcher.wait_for(lambda e: e["type"].startswith("billing.command.")
                                and e["data"].get("command_id") == command_id, since=since)
        assert done["type"] == "billing.command.completed", done

    def allowed() -> str:
        completed(signup, signup_mark)
        event(signup_mark, "billing.entitlements.changed", plan="starter")
        mark = watcher.mark()
        answer = consume(STARTER_API_CALLS - 10)
        assert answer["allowed"] and answer["remaining"] == 10, answer
        notice = event(mark, "billing.usage.threshold_reached", threshold=80)
        return (f"starter plan: {answer['used']} of {answer['limit']} api_calls allowed, remaining "
                f"{answer['remaining']}; threshold_reached {notice['data']['threshold']} % on billing.events")

    def refused() -> str:
        mark = watcher.mark()
        last = consume(10)
        assert last["allowed"] and last["remaining"] == 0, last
        over = consume(1)
        assert not over["allowed"] and over["used"] == STARTER_API_CALLS, over
        event(mark, "billing.usage.threshold_reached", threshold=100)
        return (f"the last 10 allowed (remaining 0, threshold_reached 100 %), the next one refused: "
                f"allowed={over['allowed']}, used stays {over['used']}")

    def upgraded() -> str:
        mark = watcher.mark()
        completed(command("billing.subscription.change", {"tenant_id": tenant, "plan": "pro"}), mark)
        event(mark, "billing.entitlements.changed", plan="pro")
        answer = consume(1)
        assert answer["allowed"] and answer["limit"] == PRO_API_CALLS, answer
        assert answer["used"] == STARTER_API_CALLS + 1, answer
        return f"upgraded in-app to pro: allowed again, used {answer['used']} of {answer['limit']} (usage moved along)"

    def run(step: Step) -> None:
        step("a tenant consumes its quota (POST …/usage)", allowed)
        step("at the limit, consumption is refused and nothing recorded", refused)
        step("after an upgrade, consumption is allowed again", upgraded)

    return run
