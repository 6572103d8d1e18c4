"""`catalog sync`: the plan catalog in Stripe."""
from __future__ import annotations

import click

from .output import emit, json_option, progress_stages, table


@click.group()
def catalog() -> None:
    """The plan catalog in Stripe."""


@catalog.command("sync")
@json_option
def catalog_sync() -> None:
    """Create the catalog's products, lookup_key'd prices and meters in Stripe where missing."""
    from ..bms.catalog_sync import ensure_catalog
    from ..bootstrap import bootstrap
    from ..handlers.account_pin import verify_account

    bus = bootstrap()
    bus.call(verify_account)
    with progress_stages() as progress:
        prices = ensure_catalog(bus.gateway, bus.catalog, progress=progress)
    rows = [{"plan": plan, "price": price["id"], "lookup_key": price.get("lookup_key")}
            for plan, price in sorted(prices.items())]
    emit({"prices": rows}, lambda: table(rows, ["plan", "price", "lookup_key"], empty="no paid plans"))


COMMANDS = (catalog,)
