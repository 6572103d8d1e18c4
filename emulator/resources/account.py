"""The account the API key belongs to (`GET /v1/account`): one per emulator instance.

Its id is random per `EmulatorServer` unless one is given (`account_id=`, `--account-id`), so
a client that pins the account it first talked to notices when it is pointed at another
emulator, as it would with another Stripe account."""
from __future__ import annotations

from ..router import Request, route
from ..shapes import template


@route("GET", "/v1/account")
def retrieve(req: Request):
    account = template("account")
    account.update(id=req.emulator.account_id, created=req.emulator.started_at, email=None,
                   charges_enabled=True, payouts_enabled=True, details_submitted=True)
    account["external_accounts"]["url"] = f"/v1/accounts/{req.emulator.account_id}/external_accounts"
    return account
