"""Two deployments (their own BILLING_QUEUE_PREFIX, database and Stripe account) on one Redis
database or RabbitMQ vhost stay isolated under a burst of commands and a bridge killed and
restarted mid-burst: every command reaches only its own deployment's Stripe account and ends in
exactly one outcome, on its own deployment's `billing.events` exchange only.

Before the exchanges were namespaced, both bridges were bound to the one `billing.commands` and
each deployment applied the other's commands to its own Stripe account."""
from __future__ import annotations

import signal
import threading
import uuid
from contextlib import ExitStack

import pytest

from billing_sync.client import CommandPublisher

from chaos_helpers import SECRET, TOKEN
from fleet_processes import FleetProcesses, fleet_env
from throwaway import migrated_database, start_emulator_with_catalog

pytestmark = pytest.mark.slow

COMMANDS_EACH = 12


@pytest.fixture(params=["redis", "rabbitmq"])
def shared_broker(request):
    return request.getfixturevalue("redis_url" if request.param == "redis" else "amqp_url")


@pytest.fixture
def deployments(shared_broker, tmp_path):
    from billing_sync.demo import EventWatcher

    with ExitStack() as stack:
        made = []
        for side in "ab":
            db = stack.enter_context(migrated_database(f"bs_chaos_{side}"))
            emulator = start_emulator_with_catalog(account_id=f"acct_deployment_{side}")
            stack.callback(emulator.stop)
            prefix = f"chaos-{side}-{uuid.uuid4().hex[:6]}"
            env = fleet_env(database_url=db, broker_url=shared_broker, prefix=prefix, stripe_api_base=emulator.url,
                            webhook_secrets=SECRET, api_token=TOKEN, BILLING_STRIPE_API_KEY=f"sk_test_{side}")
            fleet = FleetProcesses(tmp_path / side, env, emulator)
            (tmp_path / side).mkdir()
            stack.callback(fleet.close)
            watcher = EventWatcher(shared_broker, prefix)
            stack.callback(watcher.close)
            fleet.start_all(roles=("worker", "bridge", "relay"))
            made.append((fleet, watcher, prefix))
        yield made


def _outcomes(watcher, ids: set[str]) -> list[dict]:
    return [e for e in watcher.events
            if e["type"].startswith("billing.command.") and e["data"].get("command_id") in ids]


def test_two_deployments_on_one_broker_stay_isolated(deployments, shared_broker):
    (fleet_a, events_a, prefix_a), (fleet_b, events_b, prefix_b) = deployments
    sent: dict[str, dict[str, str]] = {prefix_a: {}, prefix_b: {}}  # prefix -> command id -> tenant

    def burst(prefix: str) -> None:
        with CommandPublisher(shared_broker, source="chaos", queue_prefix=prefix) as publisher:
            for n in range(COMMANDS_EACH):
                tenant = f"{prefix}-t{n}"
                command_id = publisher.publish("tenant.provisioned", tenant, {
                    "name": f"Tenant {n}", "email": f"{n}@example.test", "plan": "starter",
                    "payment_method": "pm_card_visa"})
                sent[prefix][command_id] = tenant

    threads = [threading.Thread(target=burst, args=(p,)) for p in (prefix_a, prefix_b)]
    for thread in threads:
        thread.start()
    fleet_b.procs["bridge"].send_signal(signal.SIGKILL)  # mid-burst: B's unacked commands come back
    fleet_b.procs["bridge"].wait(10)
    fleet_b.start("bridge")
    for thread in threads:
        thread.join(30)

    for fleet, watcher, prefix, other in ((fleet_a, events_a, prefix_a, prefix_b),
                                         (fleet_b, events_b, prefix_b, prefix_a)):
        ids = set(sent[prefix])
        watcher.wait_for(lambda e, watcher=watcher, ids=ids:
                         len({o["data"]["command_id"] for o in _outcomes(watcher, ids)}) == len(ids), timeout=60)
        outcomes = list({o["id"]: o for o in _outcomes(watcher, ids)}.values())  # the relay is at-least-once
        assert len(outcomes) == COMMANDS_EACH, fleet.logs()  # exactly one outcome each
        assert {o["type"] for o in outcomes} == {"billing.command.completed"}, outcomes
        assert not _outcomes(watcher, set(sent[other])), "saw the other deployment's outcomes"
        tenants_in_stripe = {c["metadata"].get("tenant_id") for c in fleet.emulator.state.all("customer")}
        assert tenants_in_stripe == set(sent[prefix].values()), "a command reached the other Stripe account"
