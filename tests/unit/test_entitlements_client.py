"""`billing_sync.client.Entitlements` against a stand-in server (httpx.MockTransport): what the
stream's messages do to the cache, the resume header, the staleness bound and both policies, and
`consume`'s answers. The real server and real cuts: tests/stream/test_entitlement_stream.py."""
from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from billing_sync.client import BillingRefused, Entitlements
from billing_sync.contract.stream_wire import SSEDecoder, TenantEntitlements, sse_message


def _document(tenant: str, version: int, features: list[str], limits: dict | None = None) -> dict:
    return {"tenant_id": tenant, "version": version, "plan": "pro", "status": "active", "features": features,
            "limits": limits or {}, "period_end": None}


def _changed(position: int, document: dict) -> bytes:
    envelope = {"specversion": "1.0", "id": f"e{position}", "type": "billing.entitlements.changed",
                "subject": document["tenant_id"], "data": document}
    return sse_message(envelope, event="billing.entitlements.changed", id=str(position))


class StandIn:
    """Answers each stream connection with the next script (then the connection ends); with no
    script left, refuses to connect (billing-sync unreachable)."""

    def __init__(self, *scripts: list[bytes]):
        self.scripts = list(scripts)
        self.resumed_from: list[str | None] = []
        self.usage: list[dict] = []
        self.usage_status = 200

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/stream":
            if not self.scripts:
                raise httpx.ConnectError("refused")
            self.resumed_from.append(request.headers.get("last-event-id"))
            return httpx.Response(200, content=b"".join(self.scripts.pop(0)),
                                  headers={"content-type": "text/event-stream"})
        if request.url.path.endswith("/usage"):
            if self.usage_status == 0:
                raise httpx.ConnectError("refused")
            self.usage.append(json.loads(request.content))
            return httpx.Response(self.usage_status, json={"allowed": True, "used": 1, "limit": 10, "remaining": 9})
        return httpx.Response(404)


def _client(stand_in: StandIn, **options) -> Entitlements:
    return Entitlements("http://billing", "tok", transport=httpx.MockTransport(stand_in), **options)


def _until(condition, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)


FIRST = [b"retry: 1000\n\n", sse_message(_document("acme", 1, ["sso"], {"projects": 3, "seats": 0}), event="snapshot"),
         sse_message({"position": "5", "resumed": False}, event="ready", id="5")]


def test_the_snapshot_then_events_fill_the_cache_and_a_reconnect_resumes_after_the_last_position():
    seen = []
    stand_in = StandIn(FIRST, [_changed(6, _document("acme", 2, ["audit_log"])),
                               sse_message({"position": "6", "resumed": True}, event="ready", id="6")])
    with _client(stand_in, max_staleness_s=30, on_change=lambda kind, event: seen.append(kind)) as ents:
        assert ents.wait_ready(5)
        _until(lambda: ents.get("acme").version == 2)
        assert stand_in.resumed_from == [None, "5"]
        assert ents.check("acme", "audit_log") and not ents.check("acme", "sso")
        assert not ents.check("acme", "seats") and not ents.check("nobody", "audit_log")
        assert seen == ["billing.entitlements.changed"] and ents.position == "6"


def test_an_older_version_never_replaces_a_newer_one():
    replayed = _changed(4, _document("acme", 1, ["old"]))
    stand_in = StandIn([*FIRST, _changed(6, _document("acme", 2, ["new"])), replayed])
    with _client(stand_in) as ents:
        _until(lambda: ents.position == "4")
        assert ents.check("acme", "new") and not ents.check("acme", "old")


@pytest.mark.parametrize("fail_open", [False, True])
def test_past_the_staleness_bound_check_answers_the_policy(fail_open):
    with _client(StandIn(FIRST), max_staleness_s=0.3, fail_open=fail_open) as ents:
        assert ents.wait_ready(5)
        assert ents.check("acme", "sso") and not ents.check("acme", "nothing")
        _until(lambda: ents.stale)  # the stream ended and every reconnect is refused
        assert ents.check("acme", "sso") is fail_open
        assert ents.check("acme", "nothing") is fail_open


def test_before_the_first_ready_the_cache_is_stale():
    ents = _client(StandIn())
    assert ents.stale and ents.check("acme", "sso") is False
    assert _client(StandIn(), fail_open=True).check("acme", "sso") is True


def test_consume_posts_the_usage_and_answers_the_policy_when_unreachable():
    stand_in = StandIn()
    ents = _client(stand_in)
    assert ents.consume("acme", "api_calls", 2, idempotency_key="k1")["allowed"] is True
    assert stand_in.usage == [{"feature": "api_calls", "quantity": 2, "idempotency_key": "k1", "mode": "hard"}]
    stand_in.usage_status = 0
    assert ents.consume("acme", "api_calls") == {"allowed": False, "unavailable": True, "feature": "api_calls",
                                                  "quantity": 1}
    assert _client(stand_in, fail_open=True).consume("acme", "api_calls")["allowed"] is True
    stand_in.usage_status = 400
    with pytest.raises(BillingRefused):
        ents.consume("acme", "api_calls")


def test_the_decoder_follows_the_sse_rules():
    decoder = SSEDecoder()
    lines = [": comment", "retry: 10", "id: 7", "event: x", "data: a", "data:b", "", "", "data: c", ""]
    messages = [m for m in map(decoder.feed, lines) if m is not None]
    assert [(m.event, m.data, m.id) for m in messages] == [("x", "a\nb", "7"), ("message", "c", None)]


def test_enabled_is_the_features_and_the_positive_limits():
    held = TenantEntitlements.from_document(_document("t", 3, ["sso"], {"projects": 2, "seats": 0, "x": None}))
    assert held.enabled == {"sso", "projects"}


def test_stop_ends_the_thread():
    ents = _client(StandIn(FIRST)).start()
    ents.stop()
    assert not any(t.name == "billing-entitlements" and t.is_alive() for t in threading.enumerate())
