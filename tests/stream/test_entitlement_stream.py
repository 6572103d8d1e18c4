"""Issue 10, the entitlement cache pushed to every service, on real processes: `billing-sync
ingress` serving `GET /v1/stream` over PostgreSQL, read by raw SSE connections and by
`billing_sync.client.Entitlements`. A client that is cut off or whose ingress is killed and
restarted misses no change; Last-Event-ID resumes on any ingress process; a position the stream
cannot resume gets `reset` and a snapshot; the staleness bound turns `check` into the policy."""
from __future__ import annotations

import socket
import time
import uuid

import httpx
import pytest

from billing_sync.client import Entitlements
from billing_sync.contract.stream_wire import ACCOUNT_CHANGED, ENTITLEMENTS_CHANGED

from chaos.proxy import TcpProxy
from fleet_processes import free_port
from stream_helpers import TOKEN, Changes, Ingresses, read_events
from throwaway import migrated_database


@pytest.fixture(scope="module")
def stream_db(pg_url):
    """A database of its own: no other fleet's relay publishes these rows, and positions start at 1."""
    with migrated_database("bs_stream") as url:
        yield url


@pytest.fixture(scope="module")
def ingresses(tmp_path_factory, stream_db, redis_url):
    fleet = Ingresses(tmp_path_factory.mktemp("stream"), stream_db, redis_url)
    yield fleet
    fleet.close()


@pytest.fixture(scope="module")
def ingress(ingresses) -> str:
    return ingresses.start()


@pytest.fixture(scope="module")
def changes(stream_db):
    writer = Changes(stream_db)
    yield writer
    writer.close()


def _tenant() -> str:
    return f"s-{uuid.uuid4().hex[:8]}"


def _wait_until(condition, timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} not reached within {timeout} s"
        time.sleep(0.05)


def test_the_stream_needs_a_service_token_and_known_parameters(ingress):
    assert httpx.get(f"{ingress}/v1/stream").status_code == 401
    refused = httpx.get(f"{ingress}/v1/stream", headers={"Authorization": "Bearer not-a-token"})
    assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
    bad = httpx.get(f"{ingress}/v1/stream", params={"snapshots": "1"}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert bad.status_code == 400 and bad.json()["param"] == "snapshots"


def test_last_event_id_resumes_exactly_after_the_position_on_any_ingress(ingresses, ingress, changes):
    tenant = _tenant()
    changes.entitlements(tenant, ["dashboard"])
    head = read_events(ingress)[-1]["id"]  # a fresh connection: `ready` at the head, nothing else
    changes.entitlements(tenant, ["dashboard", "sso"])
    changes.account(tenant, 1)
    changes.entitlements(tenant, ["sso"])

    other = ingresses.start()  # another process, started after the changes: the position is the database's
    replay = read_events(other, last_event_id=head)
    *missed, ready = replay
    assert [(m["event"], m["data"]["data"]["version"]) for m in missed] == [
        (ENTITLEMENTS_CHANGED, 2), (ACCOUNT_CHANGED, 1), (ENTITLEMENTS_CHANGED, 3)]
    positions = [int(m["id"]) for m in missed]
    assert positions == sorted(positions) and positions[0] > int(head)
    assert ready["event"] == "ready" and ready["data"] == {"position": missed[-1]["id"], "resumed": True}
    assert missed[0]["data"]["subject"] == tenant and missed[0]["data"]["specversion"] == "1.0"

    from_the_middle = read_events(ingress, last_event_id=missed[0]["id"])
    assert [m["id"] for m in from_the_middle[:-1]] == [m["id"] for m in missed[1:]]
    ingresses.kill(other)


@pytest.mark.parametrize("position", ["999999999", "not-a-position", "-1"])
def test_a_position_the_stream_does_not_know_gets_reset_and_a_snapshot(ingress, changes, position):
    tenant = _tenant()
    changes.entitlements(tenant, ["exports"], {"projects": 5})
    messages = read_events(ingress, last_event_id=position, params={"snapshot": "1"})
    assert messages[0]["event"] == "reset" and messages[0]["data"]["reason"] == "unknown_position"
    snapshots = {m["data"]["tenant_id"]: m["data"] for m in messages if m["event"] == "snapshot"}
    assert snapshots[tenant]["features"] == ["exports"] and snapshots[tenant]["limits"] == {"projects": 5}
    assert all(m["id"] is None for m in messages if m["event"] == "snapshot")
    assert messages[-1]["event"] == "ready" and messages[-1]["data"]["resumed"] is False


def test_a_position_older_than_the_retention_gets_reset(ingresses, changes):
    short = ingresses.start(BILLING_STREAM_RETENTION_S="1")
    head = read_events(short)[-1]["id"]
    changes.entitlements(_tenant(), ["sso"])
    time.sleep(2)
    messages = read_events(short, last_event_id=head)
    assert messages[0]["event"] == "reset" and messages[0]["data"]["reason"] == "retention"
    ingresses.kill(short)


def test_the_client_misses_no_change_across_an_ingress_kill_and_restart(ingresses, changes):
    port = free_port()
    url = ingresses.start(port)
    tenant = _tenant()
    changes.entitlements(tenant, ["sso"])
    seen: list[int] = []
    closed = Entitlements(url, TOKEN, max_staleness_s=3,
                          on_change=lambda kind, event: seen.append(event["data"]["version"]))
    opened = Entitlements(url, TOKEN, max_staleness_s=3, fail_open=True)
    with closed, opened:
        assert closed.wait_ready(30) and opened.wait_ready(30)
        assert closed.check(tenant, "sso") and not closed.check(tenant, "audit_log")
        assert not closed.check("nobody", "sso")
        changes.entitlements(tenant, ["sso", "audit_log"])
        _wait_until(lambda: closed.check(tenant, "audit_log"), what="v2")

        ingresses.kill(url)
        changes.entitlements(tenant, ["audit_log"])  # v3 and v4 while no ingress runs
        changes.entitlements(tenant, ["audit_log"], {"projects": 3})
        _wait_until(lambda: closed.stale and opened.stale, 15, "stale")
        assert closed.check(tenant, "audit_log") is False  # fail closed
        assert opened.check(tenant, "anything") is True  # fail open

        ingresses.start(port)
        _wait_until(lambda: not closed.stale and closed.get(tenant).version == 4, 60, "v4 after the restart")
        assert seen == [2, 3, 4]  # every change as an event: resumed, not re-snapshotted
        assert closed.check(tenant, "projects") and not closed.check(tenant, "sso")
        assert closed.reconnects >= 1
    ingresses.kill(f"http://127.0.0.1:{port}")


def test_the_client_misses_no_change_across_a_cut_connection(ingress, changes):
    tenant = _tenant()
    changes.entitlements(tenant, ["dashboard"])
    port = int(ingress.rsplit(":", 1)[1])
    seen: list[int] = []
    with TcpProxy("127.0.0.1", port) as proxy, Entitlements(
            f"http://127.0.0.1:{proxy.port}", TOKEN, max_staleness_s=30,
            on_change=lambda kind, event: seen.append(event["data"]["version"])) as ents:
        assert ents.wait_ready(30)
        proxy.cut()
        for _ in range(3):
            changes.entitlements(tenant, ["dashboard", "exports"])
        time.sleep(1)
        proxy.restore()
        _wait_until(lambda: ents.get(tenant).version == 4, 30, "v4 after the cut")
        assert seen == [2, 3, 4]
        assert proxy.connections_made >= 2


@pytest.mark.slow  # a 13 MB snapshot
@pytest.mark.timeout(300)
def test_a_client_that_stops_reading_is_disconnected_and_costs_no_queue(ingresses, changes):
    """A snapshot of 60,000 tenants (about 13 MB) to a client that never reads: once the socket
    buffers are full (on loopback the kernel's alone take up to about 4 MB) the ingress's write
    waits, and after BILLING_STREAM_WRITE_TIMEOUT_S it drops the connection instead of buffering
    the rest."""
    changes.many_tenants(f"bulk-{uuid.uuid4().hex[:6]}", 60_000)
    url = ingresses.start(BILLING_STREAM_WRITE_TIMEOUT_S="1")
    port = int(url.rsplit(":", 1)[1])
    with socket.socket() as stalled:
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(("127.0.0.1", port))
        stalled.sendall(f"GET /v1/stream?snapshot=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
                        .encode())
        _wait_until(lambda: "stream.client_too_slow" in ingresses.logs(), 60, "the slow client dropped")
        stalled.settimeout(10)
        received = 0
        while chunk := stalled.recv(1 << 20):  # what was in flight, then the end: the server closed
            received += len(chunk)
        assert 0 < received < 6_000_000  # of about 13 MB: the rest was never buffered for it
    assert httpx.get(f"{url}/healthz").status_code == 200
    ingresses.kill(url)
