"""The tenant-id rule (contract/ids.py) at the operator's edges: `billing-sync reconcile --tenant`
(one clear line, exit 2, nothing touched) and the `reconcile_tenant` actor (a permanent `invalid`
failure with one dead letter, the handler never called). The read API's side is in
test_read_api.py; the cases are tables, a new one is one line."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from billing_sync.models import make_session_factory
from billing_sync.models.tables import DeadLetter

from contexts import wait_until

BIN = Path(sys.executable).parent / "billing-sync"

BAD_CLI_TENANTS = [
    ("non-Latin-1", "租户"),
    ("Latin-1 but not ASCII", "été"),
    ("a space", "t 1"),
    ("a quote", "t'1"),
    ("starting with a dash", "-t1"),
    ("over 128 characters", "t" * 129),
    ("empty", ""),
]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("name, tenant_id", BAD_CLI_TENANTS, ids=[case[0] for case in BAD_CLI_TENANTS])
def test_reconcile_cli_refuses_a_bad_tenant_id_in_one_line_with_exit_2(tmp_path, name, tenant_id):
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("BILLING_")},
           "BILLING_DATABASE_URL": f"sqlite:///{tmp_path}/billing.db",
           "BILLING_STRIPE_API_BASE": f"http://127.0.0.1:{_closed_port()}", "BILLING_STRIPE_API_KEY": "sk_test_ops"}
    run = subprocess.run([str(BIN), "reconcile", f"--tenant={tenant_id}"], env=env, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 2, (run.stdout, run.stderr)
    assert run.stdout == ""
    [line] = run.stderr.splitlines()
    assert "--tenant" in line and "ASCII letters, digits" in line
    assert "Traceback" not in run.stderr


BAD_ACTOR_TENANTS = [
    ("NUL", "t\x001"),
    ("a lone surrogate", "t\ud8001"),
    ("non-Latin-1", "租户"),
    ("over the column width", "t" * 300),
    ("a number", 5),
    ("null", None),
    ("an object", {"id": "t1"}),
    ("empty", ""),
]


def _dead_letters(bus) -> list[DeadLetter]:
    with make_session_factory(bus.engine)() as session:
        return list(session.execute(select(DeadLetter).order_by(DeadLetter.id)).scalars())


def test_reconcile_actor_fails_a_bad_tenant_id_for_good_with_one_dead_letter(plumbing, handlers):
    broker, bus, _ = plumbing()
    actor = broker.get_actor("reconcile_tenant")
    for _name, tenant_id in BAD_ACTOR_TENANTS:
        actor.send(tenant_id, "reconcile")
    actor.send("t1", "reconcile")  # a good one after them is still applied

    wait_until(lambda: handlers.reconcile.calls, what="the valid tenant reconciled")
    letters = wait_until(lambda: len(found := _dead_letters(bus)) >= len(BAD_ACTOR_TENANTS) and found,
                         what="a dead letter per bad tenant id")
    assert [call[0] for call in handlers.reconcile.calls] == ["t1"]
    assert [(letter.source, letter.reason) for letter in letters] == [("reconcile_tenant", "invalid")] * len(
        BAD_ACTOR_TENANTS)
    assert all("ASCII letters, digits" in letter.detail for letter in letters)


def test_reconcile_actor_refuses_a_cause_that_is_not_a_word(plumbing, handlers):
    broker, bus, _ = plumbing()
    broker.get_actor("reconcile_tenant").send("t1", "x\x00" * 100)
    [letter] = wait_until(lambda: _dead_letters(bus))
    assert letter.reason == "invalid" and handlers.reconcile.calls == []
