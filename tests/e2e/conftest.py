"""End-to-end fixtures: the real processes (`billing-sync ingress`, `worker`, `bridge`, `relay`)
as subprocesses on real PostgreSQL and Redis or RabbitMQ, with the Stripe emulator sending real
signed webhooks to the ingress. One fleet per module and broker; tests use their own tenants."""
from __future__ import annotations

import uuid

import pytest

from billing_sync.config.catalog import load_catalog
from billing_sync.config.settings import DEFAULT_CATALOG
from billing_sync_emulator.server import EmulatorServer

# The process-starting code is shared with the benchmarks (bench/sync_bench.py).
from fleet_processes import FleetProcesses, fleet_env

SECRET = "whsec_e2e_secret"
TOKEN = "e2e-token"


def _fleet(tmp_path_factory, broker_url: str, pg_url: str, prefix: str,
           roles=("ingress", "worker", "bridge", "relay"), **env_overrides: str):
    from billing_sync.bms.catalog_sync import ensure_catalog
    from billing_sync.bms.gateway import StripeGateway

    tmp = tmp_path_factory.mktemp(prefix)
    # The Redis and RabbitMQ fleets share the session's database, which pins one Stripe account:
    # their two emulators stand for that one test-mode account.
    emulator = EmulatorServer(account_id="acct_e2e_shared").start()
    ensure_catalog(StripeGateway("sk_test_seed", api_base=emulator.url), load_catalog(DEFAULT_CATALOG))
    env = fleet_env(database_url=pg_url, broker_url=broker_url, prefix=prefix, stripe_api_base=emulator.url,
                    webhook_secrets=f"whsec_old_rotated,{SECRET}", api_token=TOKEN,
                    BILLING_STRIPE_API_KEY="sk_test_e2e", BILLING_STRIPE_TEST_CLOCKS="true", **env_overrides)
    fleet = FleetProcesses(tmp, env, emulator)
    fleet.start_all(roles)
    emulator.add_webhook_endpoint(f"{fleet.ingress_url}/webhooks/stripe", SECRET)
    return fleet


@pytest.fixture(scope="module", params=["redis", "rabbitmq"])
def fleet(request, tmp_path_factory, pg_url, redis_url, amqp_url):
    broker_url = redis_url if request.param == "redis" else amqp_url
    prefix = f"e2e-{request.param}-{uuid.uuid4().hex[:6]}"
    fleet = _fleet(tmp_path_factory, broker_url, pg_url, prefix)
    yield fleet
    fleet.close()
    fleet.emulator.stop()


@pytest.fixture
def events(fleet):
    """What a product service sees on billing.events, from now on."""
    from billing_sync.demo import EventWatcher

    watcher = EventWatcher(fleet.env["BILLING_BROKER_URL"], fleet.env["BILLING_QUEUE_PREFIX"])
    yield watcher
    watcher.close()


@pytest.fixture(autouse=True)
def _dump_logs_on_failure(request, fleet):
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(fleet.logs())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)
