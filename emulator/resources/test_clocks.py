"""Test clocks. Advancing is asynchronous, as in Stripe: the call answers `status: "advancing"`
and the clock becomes `ready` once every renewal, trial end, retry and cancellation due by the
new time has been applied (a few milliseconds here); poll the clock, or use
`EmulatorServer.wait_for_clock(id)`. Deleting a clock deletes its customers."""
from __future__ import annotations

import threading

from .. import billing
from ..billing import periods, schedule
from ..errors import invalid
from ..forms import as_int, require
from ..ids import new_id
from ..lists import PAGE_PARAMS, page
from ..router import Request, route
from ..shapes import template


@route("POST", "/v1/test_helpers/test_clocks", params={"frozen_time", "name", "customer"})
def create(req: Request):
    require(req.params, "frozen_time")
    frozen = as_int(req.params["frozen_time"], "frozen_time")
    customer = None
    if req.params.get("customer"):
        customer = req.store.require("customer", req.params["customer"], param="customer")
        if customer["test_clock"]:
            raise invalid("This customer is already attached to a test clock.", param="customer")
    clock = template("test_helpers.test_clock")
    now = req.store.now()
    clock.update({"id": new_id("clock", 24), "created": now, "deletes_after": now + 30 * billing.DAY,
                  "frozen_time": frozen, "livemode": False, "name": req.params.get("name"), "status": "ready",
                  "status_details": {}})
    req.store.add(clock)
    if customer is not None:   # attaching is for good: a customer never leaves its clock
        customer["test_clock"] = clock["id"]
    return req.store.render(clock)


@route("GET", "/v1/test_helpers/test_clocks/{clock_id}")
def retrieve(req: Request, clock_id: str):
    return req.store.render(req.store.require("test_helpers.test_clock", clock_id))


@route("GET", "/v1/test_helpers/test_clocks", params=PAGE_PARAMS)
def list_(req: Request):
    objs = req.store.live("test_helpers.test_clock")
    return page(req.store, objs, req.params, "/v1/test_helpers/test_clocks", "test_helpers.test_clock")


@route("POST", "/v1/test_helpers/test_clocks/{clock_id}/advance", params={"frozen_time"})
def advance(req: Request, clock_id: str):
    require(req.params, "frozen_time")
    clock = req.store.require("test_helpers.test_clock", clock_id)
    target = as_int(req.params["frozen_time"], "frozen_time")
    if clock["status"] != "ready":
        raise invalid("The test clock is currently advancing. Wait until it is ready and try again.",
                      param="frozen_time")
    if target <= clock["frozen_time"]:
        raise invalid("The frozen_time must be after the current frozen_time of the test clock.", param="frozen_time")
    limit = advance_limit(req.store, clock)
    if target > limit:
        raise invalid("Cannot advance a test clock more than two intervals of its shortest subscription (or two "
                      f"years when it has none) past its current frozen_time: at most {limit}.", param="frozen_time")
    previous = clock["frozen_time"]
    clock.update({"status": "advancing", "frozen_time": target,
                  "status_details": {"advancing": {"target_frozen_time": target}}})
    req.store.emit("test_helpers.test_clock.advancing", req.store.render(clock))
    body = req.store.render(clock)
    threading.Thread(target=_run_advance, args=(req.store, clock, previous, target), name=f"advance-{clock_id}",
                     daemon=True).start()
    return body


def advance_limit(store, clock: dict) -> int:
    """Stripe's rule: no further than two intervals of the shortest subscription on the clock."""
    frozen = clock["frozen_time"]
    limits = []
    for sub in schedule.subscriptions_on(store, clock["id"]):
        if sub["status"] not in billing.ENDED:
            recurring = periods.recurring_of(store, sub)
            limits.append(periods.boundary(frozen, recurring["interval"], recurring["interval_count"], 2))
    return min(limits) if limits else frozen + 730 * billing.DAY


def _run_advance(store, clock: dict, previous: int, target: int) -> None:
    """Walk the clock forward one transition at a time, with its frozen time following, so
    objects created on the way carry the moment they would have been created."""
    from . import entitlements

    with store.lock:
        store.begin_request(None, None)
        try:
            clock["frozen_time"] = previous
            while True:
                nxt = _next_due(store, clock["id"], target)
                clock["frozen_time"] = nxt
                schedule.run_due(store, clock["id"], nxt)
                if nxt >= target:
                    break
            entitlements.refresh(store, store.touched())
        finally:
            clock.update({"status": "ready", "status_details": {}, "frozen_time": target})
            store.end_request()
            store.emit("test_helpers.test_clock.ready", store.render(clock))
            store.clock_ready.notify_all()


def _next_due(store, clock_id: str, target: int) -> int:
    times = [when for sub in schedule.subscriptions_on(store, clock_id) for when, _, _ in schedule.due(store, sub)]
    return min([t for t in times if t <= target] + [target])


@route("DELETE", "/v1/test_helpers/test_clocks/{clock_id}")
def delete(req: Request, clock_id: str):
    from .customers import delete_customer

    clock = req.store.require("test_helpers.test_clock", clock_id)
    for customer in req.store.all("customer"):
        if customer["test_clock"] == clock_id and not customer.get("_deleted"):
            delete_customer(req.store, customer)
    return req.store.delete(clock)
