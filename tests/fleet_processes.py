"""The billing-sync roles as real OS processes (`billing-sync ingress`, `worker`, `bridge`, `relay`)
next to an in-process Stripe emulator: shared by tests/e2e, tests/chaos and bench/sync_bench.py (which imports it as tests.fleet_processes).

Test and bench tooling, deliberately outside the package. Each role runs in its own session
(process group), so `stop()` can also end what a role forked (Dramatiq's worker processes), and
so a Ctrl-C in the terminal reaches only the caller, which then stops the roles in order.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import httpx
import stripe

from billing_sync.config.catalog import load_catalog
from billing_sync.config.settings import DEFAULT_CATALOG

BIN = Path(sys.executable).parent / "billing-sync"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fleet_env(*, database_url: str, broker_url: str, prefix: str, stripe_api_base: str, webhook_secrets: str,
              api_token: str, **overrides: str) -> dict:
    """The environment of every role: this process's, minus any BILLING_* it has, plus ours.
    `overrides` are BILLING_* variables (full names) that replace the defaults below."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("BILLING_")},
        "BILLING_DATABASE_URL": database_url,
        "BILLING_BROKER_URL": broker_url,
        "BILLING_QUEUE_PREFIX": prefix,
        "BILLING_STRIPE_API_KEY": "sk_test_fleet",
        "BILLING_STRIPE_API_BASE": stripe_api_base,
        "BILLING_STRIPE_RATE_LIMIT": "200",
        "BILLING_WEBHOOK_SECRETS": webhook_secrets,
        "BILLING_API_TOKENS": api_token,
        "BILLING_LOG_FORMAT": "json",
        "BILLING_MIN_BACKOFF_MS": "50",
        "BILLING_MAX_BACKOFF_MS": "1000",
        "BILLING_HEARTBEAT_TIMEOUT_MS": "5000",
        "BILLING_RELAY_POLL_INTERVAL_S": "0.05",
        **overrides,
    }


def process_tree(pid: int) -> list[int]:
    """`pid` and every live process it forked, however deep, parents first (Linux: /proc).

    Not the process group: `billing-sync worker` runs Dramatiq's CLI in a group of its own
    (workers/worker.py, for its shutdown backstop), so `killpg(worker.pid, …)` reaches only the
    idle parent, never the Dramatiq processes that consume the queues."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # "pid (comm) state ppid …": comm may hold spaces and parentheses, so split after it.
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):  # the process ended meanwhile
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop(0)
        tree.append(current)
        todo.extend(sorted(children.get(current, [])))
    return tree


def signal_processes(pids: list[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def _group_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def wait_until_healthy(url: str, timeout: float = 30, logs=lambda: "") -> None:
    """Poll `url`/healthz until an ingress answers 200; RuntimeError (with `logs()`) after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("ingress did not come up:\n" + logs())
        time.sleep(0.1)


class FleetProcesses:
    """The roles as separate OS processes, and what a caller needs to talk to them."""

    def __init__(self, tmp: Path, env: dict, emulator):
        self.tmp = Path(tmp)
        self.env = env
        self.emulator = emulator
        self.port = free_port()
        self.ingress_url = f"http://127.0.0.1:{self.port}"
        self.procs: dict[str, subprocess.Popen] = {}
        self._groups: set[int] = set()  # every process group started, even ones popped from procs
        token = env["BILLING_API_TOKENS"].split(",")[0]
        self.stripe = stripe.StripeClient("sk_test_support_staff", base_addresses={"api": emulator.url})
        self._prices: dict[str, str] = {}
        self.api = httpx.Client(base_url=self.ingress_url, headers={"Authorization": f"Bearer {token}"})

    def start(self, role: str, *args: str, name: str | None = None) -> subprocess.Popen:
        """Start `role`, known to stop/kill/paused (and its log file) by `name`, the role's by
        default: a second process of a role needs a name of its own."""
        name = name or role
        with open(self.tmp / f"{name}.log", "ab") as log:
            proc = subprocess.Popen([str(BIN), role, *args], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.procs[name] = proc
        self._groups.add(proc.pid)
        return proc

    def start_all(self, roles=("ingress", "worker", "bridge", "relay"), worker_threads: int = 4) -> None:
        subprocess.run([str(BIN), "db", "upgrade"], env=self.env, check=True, capture_output=True)
        if "ingress" in roles:
            self.start("ingress", "--port", str(self.port))
        if "worker" in roles:
            self.start("worker", "--processes", "1", "--threads", str(worker_threads))
        for role in roles:
            if role not in ("ingress", "worker"):
                self.start(role)
        if "ingress" in roles:
            self.wait_healthy()

    @contextmanager
    def paused(self, role: str):
        """Every process of `role` (its whole process tree) stopped with SIGSTOP inside the block,
        continued with SIGCONT after it, also when the block fails. Yields the paused pids."""
        pids = process_tree(self.procs[role].pid)
        signal_processes(pids, signal.SIGSTOP)
        try:
            yield pids
        finally:
            signal_processes(pids, signal.SIGCONT)

    def kill(self, role: str) -> None:
        """A crash: SIGKILL to every process of `role` at once (its whole process tree: a worker's
        Dramatiq processes die with it, mid-message), and it is forgotten."""
        proc = self.procs.pop(role)
        signal_processes(process_tree(proc.pid), signal.SIGKILL)
        proc.wait()

    def wait_healthy(self, timeout: float = 30) -> None:
        wait_until_healthy(self.ingress_url, timeout, self.logs)

    def stop(self, role: str | None = None, timeout: float = 10) -> None:
        """SIGTERM (graceful), SIGKILL after `timeout`; with no role, also whatever is left in any
        process group this object started (e.g. Dramatiq children of a worker killed by a test)."""
        for name in [role] if role else list(self.procs):
            proc = self.procs.pop(name)
            groups = {_group_of(pid) for pid in process_tree(proc.pid)} - {None}  # Dramatiq's own too
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            for pgid in groups | {proc.pid}:
                self._kill_group(pgid)
        if role is None:
            for pgid in list(self._groups):
                self._kill_group(pgid)

    def _kill_group(self, pgid: int) -> None:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self._groups.discard(pgid)

    def close(self) -> None:
        self.stop()
        self.api.close()

    def logs(self, tail: int = 3000) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-tail:]}" for p in self.tmp.glob("*.log"))

    def new_tenant(self, prefix: str = "t") -> str:
        return f"{prefix}-{uuid.uuid4().hex[:8]}"

    def price(self, plan: str) -> str:
        """The Stripe price id of a catalog plan (looked up once per plan)."""
        if plan not in self._prices:
            lookup_key = load_catalog(DEFAULT_CATALOG).plans[plan].price.lookup_key
            self._prices[plan] = self.stripe.v1.prices.list(params={"lookup_keys": [lookup_key]}).data[0].id
        return self._prices[plan]

    def staff_signup(self, tenant: str, plan: str = "starter", quantity: int = 1,
                     payment_method: str = "pm_card_visa", clock: bool = False):
        """A customer (metadata tenant_id) and subscription made directly in Stripe, as support
        staff would in the dashboard; `clock` puts the customer on a test clock of its own."""
        params = {"name": tenant, "email": f"{tenant}@example.test", "metadata": {"tenant_id": tenant},
                  "payment_method": payment_method, "invoice_settings": {"default_payment_method": payment_method}}
        if clock:
            params["test_clock"] = self.stripe.v1.test_helpers.test_clocks.create(
                params={"frozen_time": int(time.time())}).id
        customer = self.stripe.v1.customers.create(params=params)
        sub = self.stripe.v1.subscriptions.create(params={
            "customer": customer.id, "items": [{"price": self.price(plan), "quantity": quantity}]})
        return customer, sub
