"""The sweep's blast-radius rail: it refuses to change the entitlements of more than
`sweep_max_change_ratio` of the known tenants at once, changes nothing when it refuses, and
`allow_mass_change` (reconcile --allow-mass-change) or a higher ratio lets it through."""
from __future__ import annotations

import pytest

from billing_sync.errors import SafetyRefusal
from billing_sync.handlers.sweep import MASS_CHANGE_FLOOR, MassChangeRefused, sweep

from fakes import FakeGateway
from test_event_handlers import World

TENANTS = 2 * MASS_CHANGE_FLOOR


@pytest.fixture
def world(sqlite_engine, make_settings):
    world = World(sqlite_engine, make_settings())
    for n in range(TENANTS):
        world.tenant_on(f"t{n}", "pro")
    first = world.bus.call(sweep)  # a backfill: every tenant is new, which is not a mass change
    assert first["entitlements_changed"] == TENANTS and first["errors"] == 0
    return world


def other_account(world) -> None:
    """The key now belongs to another Stripe account: the same catalog, none of our customers."""
    other = FakeGateway(world.clock)
    other.seed_catalog(world.bus.catalog)
    world.bus = world.bus.replace(gateway=other)


def plans(world) -> list[str]:
    return [world.snapshot(f"t{n}")["plan"] for n in range(TENANTS)]


def test_a_sweep_that_would_downgrade_every_tenant_is_refused_and_changes_nothing(world):
    outbox_before = len(world.outbox())
    other_account(world)
    with pytest.raises(MassChangeRefused) as refused:
        world.bus.call(sweep)
    assert isinstance(refused.value, SafetyRefusal)
    message = str(refused.value)
    assert f"{TENANTS} of {TENANTS} tenants" in message and "--allow-mass-change" in message
    assert "BILLING_SWEEP_MAX_CHANGE_RATIO" in message
    assert plans(world) == ["pro"] * TENANTS and len(world.outbox()) == outbox_before


def test_allow_mass_change_applies_it(world):
    other_account(world)
    report = world.bus.call(sweep, allow_mass_change=True)
    assert report["entitlements_changed"] == TENANTS
    assert plans(world) == ["free"] * TENANTS


def test_a_dry_run_is_never_refused_by_the_share_rule(world):
    other_account(world)
    report = world.bus.call(sweep, dry_run=True)
    assert report["known_tenants_changed"] == TENANTS and plans(world) == ["pro"] * TENANTS


def test_ordinary_drift_below_the_share_is_applied(world):
    for sid in list(world.gw.subscriptions)[:3]:  # three tenants' webhooks were lost
        world.gw.set_item(sid, price="starter_monthly")
    report = world.bus.call(sweep)
    assert report["entitlements_changed"] == 3 and sorted(plans(world)).count("starter") == 3


def test_the_share_is_a_setting(world):
    world.bus = world.bus.replace(settings=world.bus.settings.model_copy(
        update={"sweep_max_change_ratio": 1.0}))
    other_account(world)
    assert world.bus.call(sweep)["entitlements_changed"] == TENANTS


def test_the_dry_pass_costs_no_extra_stripe_reads(world):
    world.gw.reset_calls()
    world.bus.call(sweep)  # more than the floor: a dry pass, then the real one
    assert world.gw.count("list_active_entitlement_keys") == TENANTS
    assert world.gw.count("list_customers") == 1


def test_sweep_and_catch_up_refuse_another_account_before_reading_anything(world):
    from billing_sync.handlers.account_pin import WrongStripeAccount
    from billing_sync.handlers.catch_up import catch_up

    world.gw.account_id = "acct_someone_else"
    world.gw.reset_calls()
    for run in (lambda: world.bus.call(sweep), lambda: world.bus.call(sweep, dry_run=True),
                lambda: world.bus.call(catch_up, lambda message: None)):
        with pytest.raises(WrongStripeAccount, match="pinned to acct_fake"):
            run()
    assert {name for name, _ in world.gw.calls} == {"retrieve_account"}
    assert plans(world) == ["pro"] * TENANTS
