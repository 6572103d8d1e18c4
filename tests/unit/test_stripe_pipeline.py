"""The one Stripe-event pipeline (handlers/stripe_pipeline.py) run with a family strategy of the
test's own: what every family gets from it (ledger, tenant lookup, lock, ignore reasons), so a
new family only says what to re-read."""
from __future__ import annotations

import pytest

from billing_sync.handlers import registry, stripe_pipeline
from billing_sync.handlers.event_dispatch import family_for
from billing_sync.handlers.stripe_event import parse
from billing_sync.handlers.stripe_family import CatalogFamily, TenantFamily
from billing_sync.models import ProcessedMessage

from contexts import message
from fakes import FakeWorld


class Resyncs:
    """A family's `resync` that records the tenant it ran for."""

    def __init__(self):
        self.tenants: list[str] = []

    def __call__(self, uow, tenant, event, *, gateway, now) -> None:
        self.tenants.append(tenant.id)


@pytest.fixture
def world(sqlite_engine, make_settings):
    return FakeWorld(sqlite_engine, make_settings())


def run(world, event: dict, family) -> str:
    world.clock.advance(seconds=1)
    return world.bus.call(stripe_pipeline.run, world.bus.call(parse, message(event, world.clock())), family)


def ledger(world, event_id: str) -> tuple[str, str | None, str | None]:
    with world.bus.uow_factory() as uow:
        row = uow.session.get(ProcessedMessage, event_id)
        return row.outcome, row.reason, row.tenant_id


def test_the_family_resyncs_the_customers_tenant_once_and_the_event_is_ledgered(world):
    customer = world.gw.add_customer("t1")
    event = world.gw.add_event("thing.updated", {"id": "thing_1", "object": "thing", "customer": customer["id"]})
    resyncs = Resyncs()
    family = TenantFamily(resync=resyncs)
    assert run(world, event, family) == "applied"
    assert run(world, event, family) == "duplicate"
    assert resyncs.tenants == ["t1"] and ledger(world, event["id"]) == ("applied", None, "t1")
    with world.bus.uow_factory() as uow:  # the customer new to the tenant was mapped before the resync
        assert uow.tenants.get("t1").stripe_customer_id == customer["id"]


def test_a_tenant_hint_spares_the_customer_read_and_an_unusable_event_is_ignored_with_its_reason(world):
    customer = world.gw.add_customer("t1")
    resyncs = Resyncs()
    hinted = TenantFamily(resync=resyncs, tenant_hint=lambda event: "t1")
    world.gw.reset_calls()
    event = world.gw.add_event("thing.updated", {"id": "thing_1", "object": "thing", "customer": customer["id"]})
    assert run(world, event, hinted) == "applied"
    assert world.gw.count("retrieve_customer") == 1  # only to map the customer, not to find the tenant

    refused = TenantFamily(resync=resyncs, unusable=lambda event: "no_thing")
    other = world.gw.add_event("thing.updated", {"id": "thing_2", "object": "thing", "customer": customer["id"]})
    assert run(world, other, refused) == "ignored" and ledger(world, other["id"]) == ("ignored", "no_thing", None)
    assert resyncs.tenants == ["t1"]


@pytest.mark.parametrize("obj, reason", [
    ({"id": "thing_1", "object": "thing"}, "no_customer"),
    ({"id": "thing_1", "object": "thing", "customer": "cus_nobody"}, "no_tenant"),
])
def test_an_event_naming_no_tenant_is_ignored_without_a_resync(world, obj, reason):
    resyncs = Resyncs()
    event = world.gw.add_event("thing.updated", obj)
    assert run(world, event, TenantFamily(resync=resyncs)) == "ignored"
    assert ledger(world, event["id"])[:2] == ("ignored", reason) and resyncs.tenants == []


def test_an_event_of_no_family_is_ignored_as_unhandled(world):
    event = world.gw.add_event("radar.early_fraud_warning.created", {"id": "issfr_1", "object": "x"})
    assert family_for(event["type"], registry.STRIPE_EVENT_FAMILIES) is None
    assert run(world, event, None) == "ignored" and ledger(world, event["id"])[:2] == ("ignored", "unhandled_type")


def test_every_family_in_the_table_is_a_strategy_and_the_longest_prefix_wins():
    assert all(isinstance(family, TenantFamily | CatalogFamily) for family in registry.STRIPE_EVENT_FAMILIES.values())
    families = registry.STRIPE_EVENT_FAMILIES
    assert family_for("customer.subscription.updated", families) is families["customer.subscription."]
    assert family_for("customer.updated", families) is families["customer."]
