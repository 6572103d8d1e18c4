"""Starting an end-to-end fleet: the real roles as subprocesses (tests/fleet_processes.py), with
their own Stripe emulator that signs its webhooks to the fleet's ingress. A module of its own,
not the conftest: a test module importing `conftest` gets whichever conftest pytest loaded last
(tests/chaos has one too)."""
from __future__ import annotations

# The process-starting code is shared with the benchmarks (bench/sync_bench.py).
from fleet_processes import FleetProcesses, fleet_env
from throwaway import start_emulator_with_catalog

SECRET = "whsec_e2e_secret"
TOKEN = "e2e-token"


def start_fleet(tmp_path_factory, broker_url: str, pg_url: str, prefix: str,
                roles=("ingress", "worker", "bridge", "relay"), **env_overrides: str):
    tmp = tmp_path_factory.mktemp(prefix)
    # The Redis and RabbitMQ fleets share the session's database, which pins one Stripe account:
    # their two emulators stand for that one test-mode account.
    emulator = start_emulator_with_catalog(account_id="acct_e2e_shared")
    env = fleet_env(database_url=pg_url, broker_url=broker_url, prefix=prefix, stripe_api_base=emulator.url,
                    webhook_secrets=f"whsec_old_rotated,{SECRET}", api_token=TOKEN,
                    BILLING_STRIPE_API_KEY="sk_test_e2e", BILLING_STRIPE_TEST_CLOCKS="true", **env_overrides)
    fleet = FleetProcesses(tmp, env, emulator)
    fleet.start_all(roles)
    emulator.add_webhook_endpoint(f"{fleet.ingress_url}/webhooks/stripe", SECRET)
    return fleet
