"""`/healthz` and `/readyz` beside `/metrics` on the metrics port of the roles that have no
ingress (config/metrics_http.py, workers/readiness.py): ready when the role's database and
broker answer over real connections, 503 naming the one that does not."""
from __future__ import annotations

import socket

import httpx
import pytest

from billing_sync.config.metrics_http import serve_this_process
from billing_sync.config.settings import Settings
from billing_sync.workers.readiness import role_readiness


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(settings: Settings) -> str:
    port = free_port()
    serve_this_process(port, "127.0.0.1", role_readiness(settings))
    return f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_a_role_is_ready_when_its_database_and_broker_answer(request, pg_url, broker):
    broker_url = request.getfixturevalue("redis_url" if broker == "redis" else "amqp_url")
    base = serve(Settings(_env_file=None, database_url=pg_url, broker_url=broker_url))
    assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{base}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"ready": True, "checks": {"database": "ok", "broker": "ok"}}
    assert "process_cpu_seconds_total" in httpx.get(f"{base}/metrics").text


def test_a_role_whose_broker_is_down_is_alive_but_not_ready(pg_url):
    dead_broker = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    base = serve(Settings(_env_file=None, database_url=pg_url, broker_url=dead_broker))
    assert httpx.get(f"{base}/healthz").status_code == 200
    answer = httpx.get(f"{base}/readyz", timeout=10)
    assert answer.status_code == 503
    assert answer.json()["checks"]["database"] == "ok"
    assert answer.json()["checks"]["broker"].startswith("unavailable (")
