"""`GET /v1/account`: Stripe's account shape, an id of its own per emulator instance (or the
one given), so a client that pins its account notices another emulator."""
from __future__ import annotations

import stripe

from billing_sync_emulator.server import EmulatorServer

from .test_shapes import fixture_keys


def _account(server: EmulatorServer) -> dict:
    client = stripe.StripeClient("sk_test_account", base_addresses={"api": server.url}, max_network_retries=0)
    return client.v1.accounts.retrieve_current().to_dict()


def test_the_account_has_stripes_shape_and_a_stable_id(emulator):
    account = _account(emulator)
    assert set(account) == fixture_keys("account")
    assert account["object"] == "account" and account["id"] == emulator.account_id
    assert account["id"].startswith("acct_") and _account(emulator)["id"] == account["id"]


def test_each_instance_is_another_account_unless_told():
    with EmulatorServer() as one, EmulatorServer() as two, EmulatorServer(account_id="acct_given") as given:
        assert _account(one)["id"] != _account(two)["id"]
        assert _account(given)["id"] == "acct_given"
