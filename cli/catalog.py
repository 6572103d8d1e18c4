"""`catalog sync`: the plan catalog in Stripe."""
from __future__ import annotations

import click


@click.group()
def catalog() -> None:
    """The plan catalog in Stripe."""


@catalog.command("sync")
def catalog_sync() -> None:
    """Create the catalog's products, lookup_key'd prices and meters in Stripe where missing."""
    from ..bms.catalog_sync import ensure_catalog
    from ..bootstrap import bootstrap
    from ..handlers.account_pin import verify_account

    bus = bootstrap()
    bus.call(verify_account)
    for plan, price in ensure_catalog(bus.gateway, bus.catalog).items():
        click.echo(f"{plan}: {price['id']} ({price.get('lookup_key')})")


COMMANDS = (catalog,)
