"""`account show | repin`: the Stripe account this database is pinned to."""
from __future__ import annotations

import sys

import click

from .output import emit, fields, json_option


@click.group()
def account() -> None:
    """The Stripe account this database is pinned to."""


@account.command("show")
@json_option
def account_show() -> None:
    """The pinned account and the account of BILLING_STRIPE_API_KEY (exit 3 when they differ)."""
    from ..bootstrap import bootstrap
    from ..handlers.account_pin import pinned_account

    bus = bootstrap()
    with bus.uow_factory() as uow:
        pinned = pinned_account(uow)
    current = bus.gateway.stripe_account_id()
    matches = pinned is None or pinned == current
    emit({"pinned": pinned, "key_account": current, "matches": matches},
         lambda: fields({"pinned": pinned or "(nothing yet; pinned on first contact)", "key's account": current}))
    if not matches:
        sys.exit(3)


@account.command("repin")
@click.option("--from", "old", required=True, help="The account the database is pinned to now (acct_…).")
@json_option
def account_repin(old: str) -> None:
    """Move this database to the key's Stripe account, on purpose."""
    from ..bootstrap import bootstrap
    from ..handlers.account_pin import repin

    new = bootstrap().call(repin, old)
    emit({"pinned": new, "was": old}, lambda: click.echo(f"pinned to {new} (was {old})"))


COMMANDS = (account,)
