"""`--metrics-port` on the roles without an ingress: `billing-sync relay` and `billing-sync worker
--processes 2` as real processes on PostgreSQL and Redis, scraped over HTTP."""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from billing_sync.config.metrics_http import LiveProcessesCollector
from billing_sync.models import make_session_factory, utcnow
from billing_sync.models.tables import OutboxMessage, ProcessedMessage

from contexts import wait_until
from fleet_processes import BIN, free_port

EVENT_TYPE = "billing.entitlements.changed"


def sample(text: str, name: str, **labels: str) -> float | None:
    """The sum of `name`'s samples whose labels include `labels`; None when there is none."""
    values = [s.value for family in text_string_to_metric_families(text) for s in family.samples
              if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    return sum(values) if values else None


def scrape(port: int) -> str:
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
    except httpx.HTTPError:
        return ""
    return response.text if response.status_code == 200 else ""


@pytest.fixture(scope="module")
def migrated(pg_url):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BILLING_")}
    subprocess.run([str(BIN), "db", "upgrade"], env={**env, "BILLING_DATABASE_URL": pg_url}, check=True,
                   capture_output=True, timeout=60)
    return pg_url


@pytest.fixture
def role_env(migrated, redis_url, unique_prefix, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BILLING_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return {
        **env,
        "BILLING_DATABASE_URL": migrated,
        "BILLING_BROKER_URL": redis_url,
        "BILLING_QUEUE_PREFIX": unique_prefix,
        "BILLING_STRIPE_API_BASE": "http://127.0.0.1:9",  # nothing here talks to Stripe
        "BILLING_RELAY_POLL_INTERVAL_S": "0.05",
        "BILLING_LOG_FORMAT": "json",
        "TMPDIR": str(tmp_path),  # where `worker` makes its multiprocess directory
    }


@pytest.fixture
def roles(tmp_path):
    """Start roles as subprocesses (own process group each); stop whatever is left at the end."""
    started: list[subprocess.Popen] = []

    def start(env: dict, *args: str) -> subprocess.Popen:
        log = open(tmp_path / f"{args[0]}-{len(started)}.log", "wb")
        proc = subprocess.Popen([str(BIN), *args], env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(15)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # and anything it forked
        proc.wait()


def logs(tmp_path: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in tmp_path.glob("*.log"))


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(30)


def test_relay_serves_published_counts_failures_and_a_lag_that_rises_while_the_bus_is_down(
        pg_engine, role_env, roles, tmp_path):
    sessions = make_session_factory(pg_engine)
    with sessions() as session, session.begin():
        for minutes_ago in (3, 2, 1):
            session.add(OutboxMessage(event_id=f"evt-{uuid.uuid4().hex}", type=EVENT_TYPE, subject="t-metrics",
                                      data={"n": minutes_ago}, created_at=utcnow() - timedelta(minutes=minutes_ago)))

    # The event bus refuses: nothing is published, the failures count, the lag is the oldest row's age.
    port = free_port()
    down = roles({**role_env, "BILLING_EVENTS_URL": "redis://127.0.0.1:9/0"}, "relay", "--metrics-port", str(port),
                 "--metrics-host", "127.0.0.1")
    # (The lag is observed just after a failed pass is counted: wait for the lag.)
    text = wait_until(lambda: (t := scrape(port)) and (sample(t, "billing_outbox_lag_seconds") or 0) >= 180 and t,
                    timeout=20)
    assert down.poll() is None, logs(tmp_path)
    assert sample(text, "billing_outbox_publish_failures_total") >= 1
    assert sample(text, "billing_outbox_published_total", type=EVENT_TYPE) is None
    assert stop(down) == 0

    # The bus is back (the broker's Redis): all three go out, the lag drops to 0.
    port = free_port()
    roles(role_env, "relay", "--metrics-port", str(port), "--metrics-host", "127.0.0.1")
    text = wait_until(lambda: (t := scrape(port)) and sample(t, "billing_outbox_published_total", type=EVENT_TYPE) == 3
                    and sample(t, "billing_outbox_lag_seconds") == 0 and t, timeout=20)
    assert sample(text, "billing_outbox_publish_failures_total") == 0
    with sessions() as session:
        assert session.scalar(select(func.count()).where(OutboxMessage.published_at.is_(None))) == 0


def test_worker_serves_the_sum_over_its_processes_and_removes_its_directory(
        pg_engine, role_env, roles, tmp_path, redis_url, unique_prefix, make_settings):
    from billing_sync.workers.broker import make_broker

    port = free_port()
    worker = roles(role_env, "worker", "--processes", "2", "--threads", "2", "--metrics-port", str(port),
                   "--metrics-host", "127.0.0.1")
    client = redis.Redis.from_url(redis_url)
    try:
        # Both Dramatiq processes consume once each has a heartbeat in the namespace.
        wait_until(lambda: client.zcard(f"{unique_prefix}:__heartbeats__") >= 2 or worker.poll() is not None,
                 timeout=30)
    finally:
        client.close()
    assert worker.poll() is None, logs(tmp_path)
    [metrics_dir] = tmp_path.glob("billing-sync-metrics-*")

    settings = make_settings(broker_url=redis_url, queue_prefix=unique_prefix, database_url=role_env[
        "BILLING_DATABASE_URL"])
    actors = make_broker(settings, make_current=False).billing_actors
    sent = 100  # enough that both processes take some, each holding at most 4 at a time
    for _ in range(sent):
        event = {"id": f"evt_{uuid.uuid4().hex}", "object": "event", "type": "metrics.unknown_type",
                 "data": {"object": {}}}
        actors.process_stripe_event.send({"event": event, "received_at": utcnow().isoformat()})

    processed = "billing_actor_messages_processed_total"
    text = wait_until(lambda: (t := scrape(port)) and sample(t, processed, actor="process_stripe_event") == sent and t,
                    timeout=20)
    assert sample(text, "billing_actor_duration_seconds_count", actor="process_stripe_event") == sent
    assert sample(text, "billing_actor_messages_failed_total") is None
    with make_session_factory(pg_engine)() as session:
        assert session.scalar(select(func.count()).where(ProcessedMessage.type == "metrics.unknown_type",
                                                         ProcessedMessage.outcome == "ignored")) == sent

    # The endpoint's figure is the sum of both processes' own counts.
    per_process = counts_per_process(metrics_dir, tmp_path / "split", processed)
    assert len(per_process) == 2, per_process
    assert all(count > 0 for count in per_process.values()), per_process
    assert sum(per_process.values()) == sent

    assert stop(worker) == 0, logs(tmp_path)
    assert not metrics_dir.exists()


def counts_per_process(metrics_dir: Path, scratch: Path, name: str) -> dict[int, float]:
    """Each worker pid's own value of counter `name`, read from its file alone."""
    counts = {}
    for db in metrics_dir.glob("counter_*.db"):
        pid = int(db.stem.rsplit("_", 1)[1])
        alone = scratch / str(pid)
        alone.mkdir(parents=True)
        shutil.copy(db, alone / db.name)
        values = [s.value for family in LiveProcessesCollector(str(alone)).collect() for s in family.samples
                  if s.name == name]
        if values:
            counts[pid] = sum(values)
    return counts


SET_LAG = """
import sys
from billing_sync.config import metrics
metrics.OUTBOX_LAG_SECONDS.set(float(sys.argv[1]))
print("set", flush=True)
sys.stdin.read()  # stay alive until the test closes stdin
"""


def test_live_gauges_of_exited_processes_are_dropped_at_scrape(tmp_path):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    procs = [subprocess.Popen([sys.executable, "-c", SET_LAG, value], env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for value in ("42", "7")]
    try:
        for proc in procs:
            assert proc.stdout.readline().strip() == "set"
        collector = LiveProcessesCollector(str(tmp_path))

        def lag() -> float:
            return sample_of(collector, "billing_outbox_lag_seconds")

        assert lag() == 42  # livemax over both live processes
        procs[0].stdin.close()
        procs[0].wait(10)
        assert lag() == 7  # the exited process's value no longer counts
        assert not list(tmp_path.glob(f"gauge_livemax_{procs[0].pid}.db"))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.stdin.close()
                proc.wait(10)


def sample_of(collector, name: str) -> float | None:
    values = [s.value for family in collector.collect() for s in family.samples if s.name == name]
    return max(values) if values else None
