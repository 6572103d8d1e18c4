"""`billing-sync emulator --port P` runs the emulator standalone."""
from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import stripe

BIN = Path(sys.executable).parent / "billing-sync"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_cli_emulator_serves_the_api():
    port = free_port()
    proc = subprocess.Popen([str(BIN), "emulator", "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{url}/_emulator/health", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline, "emulator did not come up"
            time.sleep(0.05)
        client = stripe.StripeClient("sk_test_cli", base_addresses={"api": url})
        customer = client.v1.customers.create(params={"name": "from the cli"})
        assert client.v1.customers.retrieve(customer.id).name == "from the cli"
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
