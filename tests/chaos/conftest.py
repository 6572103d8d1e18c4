"""Chaos fixtures: the real roles as subprocesses (tests/fleet_processes.py, as in tests/e2e), next
to the in-process Stripe emulator, with outages we can cause without touching the shared services:
a private `redis-server` to kill (OwnRedis) and TCP proxies to cut (TcpProxy).

Every test module gets its own PostgreSQL database, so "nothing in dead_letters" means this
module's fleet lost nothing. Everything started here is stopped on teardown, also on failure.
"""
from __future__ import annotations

import uuid
from contextlib import ExitStack

import pytest

from chaos_helpers import PG_HOST, PG_PORT, SECRET, TOKEN
from fleet_processes import FleetProcesses, fleet_env, free_port
from throwaway import migrated_database


@pytest.fixture(scope="module")
def chaos_db():
    """A fresh, migrated database for this module (its URL), dropped afterwards."""
    with migrated_database("bs_chaos") as url:
        yield url


@pytest.fixture(scope="module")
def stack(chaos_db):
    """Teardown in reverse order of start, whatever failed in between; before the module's
    database is dropped (hence the dependency)."""
    with ExitStack() as exits:
        yield exits


@pytest.fixture(scope="module")
def chaos_prefix():
    """The module's deployment (BILLING_QUEUE_PREFIX): its fleets publish on its exchanges,
    which is what the `events` watcher listens to. One fleet per broker in a module."""
    return f"chaos-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def make_fleet(tmp_path_factory, emulator, stack, chaos_prefix):
    """`make_fleet(database_url=, broker_url=, roles=, **BILLING_overrides)` → started FleetProcesses."""

    def make(*, database_url: str, broker_url: str, roles=("ingress", "worker", "relay"),
             **overrides) -> FleetProcesses:
        prefix = chaos_prefix
        env = fleet_env(database_url=database_url, broker_url=broker_url, prefix=prefix,
                        stripe_api_base=emulator.url, webhook_secrets=SECRET, api_token=TOKEN,
                        BILLING_STRIPE_API_KEY="sk_test_chaos", **overrides)
        fleet = FleetProcesses(tmp_path_factory.mktemp(prefix), env, emulator)
        if broker_url.startswith("redis://"):
            stack.callback(_delete_keys, broker_url, prefix)  # runs after fleet.close (LIFO)
        stack.callback(fleet.close)
        fleet.start_all(roles=roles)
        return fleet

    return make


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory, stack):
    from redis_server import OwnRedis

    server = OwnRedis(free_port(), tmp_path_factory.mktemp("redis") / "redis.log")
    stack.callback(server.kill)
    return server.start()


@pytest.fixture(scope="module")
def pg_proxy(stack):
    """A cuttable path to the shared PostgreSQL."""
    from proxy import TcpProxy

    proxy = TcpProxy(PG_HOST, PG_PORT).start()
    stack.callback(proxy.close)
    return proxy


@pytest.fixture
def events(shared_bus_url, chaos_prefix):
    """What a product service sees on billing.events, from now on (on the shared, never-killed bus)."""
    from billing_sync.demo import EventWatcher

    watcher = EventWatcher(shared_bus_url, chaos_prefix)
    yield watcher
    watcher.close()


@pytest.fixture(scope="module")
def shared_bus_url(redis_url):
    """The shared Redis, database 12: billing.events is one exchange per Redis database, and tests
    elsewhere (tests/workers/test_relay.py) read everything published on it in database 15."""
    return redis_url.rsplit("/", 1)[0] + "/12"


def _delete_keys(url: str, prefix: str) -> None:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)
        client.close()
    except redis.RedisError:  # e.g. the test's own Redis is already gone
        pass


# -- logs of the fleet on failure -----------------------------------------------------------------

@pytest.fixture(autouse=True)
def _dump_logs_on_failure(request):
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for name in ("fleet", "rabbit_fleet"):
            fleet = request.node.funcargs.get(name)
            if fleet is not None:
                print(fleet.logs(6000))
