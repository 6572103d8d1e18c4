"""A worker SIGKILLed mid-message on real Redis: its message comes back within seconds, thanks to
the tuned heartbeat timeout and maintenance chance (Dramatiq's defaults: a minute or more)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import redis

from billing_sync.workers.broker import make_broker

from contexts import wait_until
from fleet_processes import BIN, free_port, process_tree, signal_processes

HERE = Path(__file__).parent
HEARTBEAT_MS = 2000


def start_worker(mode: str, markers: Path, env: dict, tmp_path: Path) -> subprocess.Popen:
    log = open(tmp_path / f"{mode}.log", "wb")
    proc = subprocess.Popen([sys.executable, str(HERE / "kill_worker_main.py"), mode, str(markers)],
                            env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    wait_until(lambda: (markers / f"{mode}-ready").exists() or proc.poll() is not None, timeout=30)
    assert proc.poll() is None, (tmp_path / f"{mode}.log").read_text()
    return proc


def test_killed_workers_message_is_redelivered_within_seconds(tmp_path, own_redis_url, unique_prefix, make_settings,
                                                              redis_cleanup):
    redis_url = own_redis_url
    markers = tmp_path / "markers"
    markers.mkdir()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("BILLING_")},
           "BILLING_BROKER_URL": redis_url, "BILLING_QUEUE_PREFIX": unique_prefix,
           "BILLING_HEARTBEAT_TIMEOUT_MS": str(HEARTBEAT_MS),
           "BILLING_DATABASE_URL": f"sqlite:///{tmp_path}/unused.db", "BILLING_LOG_FORMAT": "json"}
    slow = start_worker("slow", markers, env, tmp_path)
    fast = None
    try:
        settings = make_settings(broker_url=redis_url, queue_prefix=unique_prefix)
        broker = make_broker(settings, make_current=False)
        event_id = f"evt_{uuid.uuid4().hex[:12]}"
        broker.get_actor("process_stripe_event").send(
            {"event": {"id": event_id, "object": "event", "type": "invoice.paid", "data": {"object": {}}},
             "received_at": "2026-11-23T10:00:00+00:00"})
        wait_until(lambda: (markers / f"slow-started-{event_id}").exists(), timeout=15)

        slow.send_signal(signal.SIGKILL)
        slow.wait()
        killed_at = time.monotonic()
        fast = start_worker("fast", markers, env, tmp_path)
        wait_until(lambda: (markers / f"fast-done-{event_id}").exists(), timeout=30)
        redelivered_after = time.monotonic() - killed_at
        print(f"redelivered {redelivered_after:.1f} s after SIGKILL (heartbeat timeout {HEARTBEAT_MS} ms)")
        # Worker start-up (~1-2 s) + heartbeat timeout + a maintenance pass; Dramatiq's defaults: 60 s+.
        assert redelivered_after < HEARTBEAT_MS / 1000 + 10
        assert not (markers / f"slow-done-{event_id}").exists()
        broker.close()
    finally:
        for proc in (slow, fast):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


def test_a_sigkilled_worker_role_leaves_no_dramatiq_process_behind(tmp_path, own_redis_url, unique_prefix,
                                                                   redis_cleanup):
    """`billing-sync worker` runs Dramatiq's CLI in a process group of its own (for its shutdown
    backstop), so a SIGKILL of the role, which no handler hears, used to orphan Dramatiq's main
    and worker processes: they kept consuming, with nobody left to stop them."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("BILLING_")},
           "BILLING_BROKER_URL": own_redis_url, "BILLING_QUEUE_PREFIX": unique_prefix,
           "BILLING_DATABASE_URL": f"sqlite:///{tmp_path}/unused.db", "BILLING_LOG_FORMAT": "json",
           "BILLING_STRIPE_API_BASE": f"http://127.0.0.1:{free_port()}"}  # unreachable: the pin is skipped
    with open(tmp_path / "worker.log", "wb") as log:
        role = subprocess.Popen([str(BIN), "worker", "--processes", "1", "--threads", "1"], env=env, cwd=tmp_path,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    tree: list[int] = []

    def started() -> list[int] | None:  # the role, Dramatiq's main process and its worker process
        pids = process_tree(role.pid)
        return pids if len(pids) >= 3 else None

    client = redis.Redis.from_url(own_redis_url)
    try:
        tree = wait_until(started, 30, "Dramatiq's processes started")
        # Consuming (its heartbeat is in Redis): the worker process has booted, not merely forked.
        wait_until(lambda: client.zcard(f"{unique_prefix}:__heartbeats__"), 30, "the worker consuming")
        role.send_signal(signal.SIGKILL)
        role.wait()
        wait_until(lambda: not alive(tree[1:]), 15, "Dramatiq's processes gone with the role")
    finally:
        client.close()
        signal_processes(tree, signal.SIGKILL)
        if role.poll() is None:
            role.kill()
            role.wait()


def alive(pids: list[int]) -> list[int]:
    """Those of `pids` still running (a zombie has finished: it only waits for its reaper)."""
    running = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            running.append(pid)
    return running
