"""Every role stops within its grace period on SIGTERM, also while its broker or database is down:
refusing connections (the bridge used to retry inside kombu forever and needed SIGKILL) or
black-holed (accepting connections and never answering, so a read waits with no timeout).
Each role runs as the real `billing-sync` process."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fleet_processes import free_port

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent / "billing-sync"
GRACE_S = 4.0
WORKER_GRACE_S = 30 + 5  # in-flight messages get the shutdown timeout, then the backstop
SETTLE_S = 5.0  # long enough for the role to be inside its connect / retry loop


class BlackHole:
    """A TCP port that accepts every connection and never says a word."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.conns:
            conn.close()


@pytest.fixture(scope="module")
def hole():
    server = BlackHole()
    yield server.port
    server.close()


@pytest.fixture(scope="module")
def refused():
    return free_port()  # nothing listens there


def urls(port: int) -> dict:
    return {"BILLING_BROKER_URL": f"redis://127.0.0.1:{port}/0",
            "BILLING_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/nowhere"}


CASES = {
    # role: (argv, extra settings)
    "bridge": (["bridge"], {}),
    "bridge-rabbitmq": (["bridge"], {"BILLING_BROKER_URL": "amqp://guest:guest@127.0.0.1:{port}/%2F"}),
    "relay": (["relay"], {}),
    "scheduler": (["scheduler"], {}),
    "ingress": (["ingress", "--port", "0"], {}),
    # up migrates its database first and exits at once when it is refused: the broker is what is down
    "up": (["up", "--port", "0"], {"BILLING_DATABASE_URL": "sqlite:///{tmp}/up.db"}),
    "worker": (["worker", "--processes", "1", "--threads", "2"], {}),
}


@pytest.mark.parametrize("down", ["refused", "black-holed"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_sigterm_stops_the_role_within_its_grace_period_while_its_dependencies_are_down(
        case, down, hole, refused, tmp_path):
    port = refused if down == "refused" else hole
    argv, extra = CASES[case]
    env = {k: v for k, v in os.environ.items() if not k.startswith("BILLING_")}
    env.update(urls(port), BILLING_STRIPE_API_BASE=f"http://127.0.0.1:{refused}", BILLING_STRIPE_API_KEY="sk_test_x",
               BILLING_SHUTDOWN_GRACE_S=str(GRACE_S), BILLING_LOG_FORMAT="json")
    env.update({k: v.format(port=port, tmp=tmp_path) for k, v in extra.items()})
    log_path = tmp_path / f"{case}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([str(BIN), *argv], env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        time.sleep(SETTLE_S)
        assert proc.poll() is None, f"{case} exited by itself:\n{log_path.read_text()[-2000:]}"
        proc.send_signal(signal.SIGTERM)
        limit = (WORKER_GRACE_S if case == "worker" else GRACE_S) + 3.0
        started = time.monotonic()
        try:
            proc.wait(limit)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{case} still running {limit} s after SIGTERM with its dependencies {down}:\n"
                        f"{log_path.read_text()[-2000:]}")
        assert time.monotonic() - started <= limit
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL) if case == "worker" else proc.kill()
            proc.wait()


@pytest.mark.parametrize("bus", ["rabbitmq", "redis"])
def test_the_bridge_stops_on_sigterm_after_its_bus_went_away(bus, amqp_url, redis_url, tmp_path, unique_prefix):
    """The reported case: a consuming bridge whose broker goes down kept retrying inside kombu
    (which never looks at the stop flag) and needed SIGKILL."""
    from urllib.parse import urlsplit

    from proxy import TcpProxy

    target = urlsplit(amqp_url if bus == "rabbitmq" else redis_url)
    proxy = TcpProxy(target.hostname, target.port).start()
    via_proxy = (f"amqp://guest:guest@127.0.0.1:{proxy.port}/%2F" if bus == "rabbitmq"
                 else f"redis://127.0.0.1:{proxy.port}{target.path}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BILLING_")}
    env.update(BILLING_BROKER_URL=via_proxy, BILLING_DATABASE_URL=f"sqlite:///{tmp_path}/bridge.db",
               BILLING_QUEUE_PREFIX=unique_prefix, BILLING_SHUTDOWN_GRACE_S=str(GRACE_S), BILLING_LOG_FORMAT="json")
    log_path = tmp_path / "bridge.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([str(BIN), "bridge"], env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while "bridge.consuming" not in log_path.read_text():
            assert time.monotonic() < deadline and proc.poll() is None, log_path.read_text()[-2000:]
            time.sleep(0.1)
        proxy.cut()  # the broker is gone: every reconnect is refused
        time.sleep(3)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(GRACE_S + 3)
        except subprocess.TimeoutExpired:
            pytest.fail(f"bridge still running after SIGTERM with its bus down:\n{log_path.read_text()[-2000:]}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proxy.close()
