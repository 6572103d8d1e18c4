"""`billing-sync worker` and `billing-sync ingress` as real processes on real Redis."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid

import httpx
import redis

from billing_sync.ingress.signature import sign_header

from contexts import wait_until
from fleet_processes import BIN, free_port


def env_for(**values) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BILLING_")}
    env.update({f"BILLING_{k.upper()}": str(v) for k, v in values.items()})
    return env


def test_worker_and_ingress_refuse_the_embedded_broker(tmp_path):
    env = env_for(broker_url="embedded", database_url=f"sqlite:///{tmp_path}/x.db")
    worker = subprocess.run([str(BIN), "worker"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert worker.returncode == 2
    assert "needs a shared broker" in worker.stderr
    ingress = subprocess.run([str(BIN), "ingress"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert ingress.returncode != 0
    assert "needs a shared broker" in ingress.stderr


def test_worker_command_boots_dramatiq_workers_and_stops_on_sigterm(tmp_path, own_redis_url, unique_prefix, sqlite_url,
                                                                    redis_cleanup):
    redis_url = own_redis_url
    env = env_for(broker_url=redis_url, queue_prefix=unique_prefix, database_url=sqlite_url, log_format="json")
    log = open(tmp_path / "worker.log", "wb")
    proc = subprocess.Popen([str(BIN), "worker", "--processes", "2", "--threads", "2"], env=env, cwd=tmp_path,
                            stdout=log, stderr=subprocess.STDOUT)
    client = redis.Redis.from_url(redis_url)
    try:
        # Each worker process's broker heartbeats into the namespace's sorted set as it polls.
        wait_until(lambda: client.zcard(f"{unique_prefix}:__heartbeats__") >= 2 or proc.poll() is not None, timeout=30)
        assert proc.poll() is None, (tmp_path / "worker.log").read_text()
        assert client.zcard(f"{unique_prefix}:__heartbeats__") == 2
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        client.close()


def test_ingress_command_serves_and_enqueues(tmp_path, own_redis_url, unique_prefix, sqlite_url, redis_cleanup):
    redis_url = own_redis_url
    port = free_port()
    env = env_for(broker_url=redis_url, queue_prefix=unique_prefix, database_url=sqlite_url,
                  webhook_secrets="whsec_cmd", log_format="json")
    log = open(tmp_path / "ingress.log", "wb")
    proc = subprocess.Popen([str(BIN), "ingress", "--port", str(port)], env=env, cwd=tmp_path, stdout=log,
                            stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def healthy():
        try:
            return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return proc.poll() is not None

    try:
        wait_until(healthy, timeout=30)
        assert proc.poll() is None, (tmp_path / "ingress.log").read_text()
        assert httpx.get(f"{base}/readyz").json()["ready"] is True
        event = {"id": f"evt_{uuid.uuid4().hex[:10]}", "object": "event", "type": "customer.updated",
                 "data": {"object": {"id": "cus_1"}}}
        body = json.dumps(event).encode()
        response = httpx.post(f"{base}/webhooks/stripe", content=body,
                              headers={"Stripe-Signature": sign_header(body, "whsec_cmd")})
        assert response.status_code == 200
        client = redis.Redis.from_url(redis_url)
        assert client.llen(f"{unique_prefix}:{unique_prefix}.stripe-events") == 1
        client.close()
        logged = (tmp_path / "ingress.log").read_text()
        assert event["id"] in logged and "cus_1" not in logged
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
