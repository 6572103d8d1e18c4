"""`account show | repin`: the Stripe account this database is pinned to."""
from __future__ import annotations

import sys

import click


@click.group()
def account() -> None:
    """The Stripe account this database is pinned to."""


@account.command("show")
def account_show() -> None:
    """The pinned account and the account of BILLING_STRIPE_API_KEY."""
    from ..bootstrap import bootstrap
    from ..handlers.account_pin import pinned_account

    bus = bootstrap()
    with bus.uow_factory() as uow:
        pinned = pinned_account(uow)
    current = bus.gateway.stripe_account_id()
    click.echo(f"pinned: {pinned or '(nothing yet; pinned on first contact)'}")
    click.echo(f"key's account: {current}")
    if pinned and pinned != current:
        sys.exit(3)


@account.command("repin")
@click.option("--from", "old", required=True, help="The account the database is pinned to now (acct_…).")
def account_repin(old: str) -> None:
    """Move this database to the key's Stripe account, on purpose."""
    from ..bootstrap import bootstrap
    from ..handlers.account_pin import repin

    click.echo(f"pinned to {bootstrap().call(repin, old)} (was {old})")


COMMANDS = (account,)
