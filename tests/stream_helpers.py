"""What the stream's tests and bench/stream_bench.py share: `billing-sync ingress` processes on a
database of their own, and entitlement changes written the way the handlers write them (snapshot
and outbox row in one transaction; the row marked published, since no relay runs)."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx

from billing_sync.models import make_engine, unit_of_work_factory, utcnow

from fleet_processes import BIN, fleet_env, free_port, wait_until_healthy

TOKEN = "stream-token"


class Ingresses:
    """`billing-sync ingress` processes over one database; each known by its URL."""

    def __init__(self, tmp: Path, database_url: str, broker_url: str, **env: str):
        self.tmp = Path(tmp)
        self.env = fleet_env(database_url=database_url, broker_url=broker_url, prefix=f"stream-{os.getpid()}",
                             stripe_api_base="http://127.0.0.1:9", webhook_secrets="whsec_stream",
                             api_token=TOKEN, **env)
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, port: int | None = None, **env: str) -> str:
        port = port or free_port()
        url = f"http://127.0.0.1:{port}"
        with open(self.tmp / f"ingress-{port}.log", "ab") as log:
            self.procs[url] = subprocess.Popen([str(BIN), "ingress", "--port", str(port)], env={**self.env, **env},
                                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until_healthy(url, 60, self.logs)
        return url

    def kill(self, url: str) -> None:
        proc = self.procs.pop(url)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def close(self) -> None:
        for url in list(self.procs):
            self.kill(url)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in self.tmp.glob("*.log"))


class Changes:
    """Writes entitlement changes (and billing.account.changed) as a handler does."""

    def __init__(self, database_url: str):
        self.engine = make_engine(database_url)
        self.uow_factory = unit_of_work_factory(self.engine)
        self.versions: dict[str, int] = {}
        self.commit_started = 0.0  # time.perf_counter() as the last change began to commit (bench)

    def entitlements(self, tenant: str, features: list[str], limits: dict | None = None, cause: str = "test") -> int:
        version = self.versions.get(tenant, 0) + 1
        self.versions[tenant] = version
        limits = limits or {}
        with self.uow_factory() as uow:
            uow.tenants.lock(tenant)
            snapshot = uow.snapshots.get_or_new(tenant)
            snapshot.version, snapshot.plan, snapshot.status = version, "pro", "active"
            snapshot.features, snapshot.limits = sorted(features), limits
            row = uow.outbox.add("billing.entitlements.changed", tenant, {
                "tenant_id": tenant, "version": version, "plan": "pro", "status": "active",
                "features": sorted(features), "limits": limits, "period_end": None, "cause": cause})
            row.published_at = utcnow()
            self.commit_started = time.perf_counter()
            uow.commit()
        return version

    def many_tenants(self, prefix: str, count: int) -> None:
        """`count` tenants with entitlements (no events), in one transaction: a large snapshot."""
        from sqlalchemy import insert

        from billing_sync.models import EntitlementSnapshot, Tenant

        ids = [f"{prefix}-{n}" for n in range(count)]
        with self.uow_factory() as uow:
            uow.session.execute(insert(Tenant), [{"id": tenant} for tenant in ids])
            uow.session.execute(insert(EntitlementSnapshot), [
                {"tenant_id": tenant, "version": 1, "plan": "pro", "status": "active", "cause": "test",
                 "features": ["dashboard", "exports", "sso"], "limits": {"projects": n}, "updated_at": utcnow()}
                for n, tenant in enumerate(ids)])
            uow.commit()

    def account(self, tenant: str, version: int) -> None:
        with self.uow_factory() as uow:
            uow.tenants.lock(tenant)
            row = uow.outbox.add("billing.account.changed", tenant, {"tenant_id": tenant, "version": version,
                                                                      "cause": "test"})
            row.published_at = utcnow()
            uow.commit()

    def close(self) -> None:
        self.engine.dispose()


def read_events(url: str, *, last_event_id: str | None = None, until: str = "ready", count: int = 1,
                params: dict | None = None, timeout: float = 30) -> list[dict]:
    """The SSE messages of one connection (each `{"event", "id", "data"}`) up to and including the
    `count`-th message whose event is `until`, then hang up."""
    from billing_sync.contract.stream_wire import SSEDecoder

    headers = {"Authorization": f"Bearer {TOKEN}"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    messages, seen, decoder = [], 0, SSEDecoder()
    deadline = time.monotonic() + timeout
    with httpx.stream("GET", f"{url}/v1/stream", headers=headers, params=params or {}, timeout=timeout) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            message = decoder.feed(line)
            if message is not None:
                messages.append({"event": message.event, "id": message.id, "data": message.json()})
                seen += message.event == until
                if seen >= count:
                    return messages
            assert time.monotonic() < deadline, messages
    raise AssertionError(f"stream ended early: {messages}")
