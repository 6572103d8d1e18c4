"""The Stripe account pin: a database belongs to one Stripe account, for good.

The first role that talks to Stripe (`GET /v1/account`) stores the account's id in
`sync_cursors` (`stripe.account`); every role that calls Stripe checks it at start-up and
refuses to run against another account. Without it, a key of another account (or a restarted
emulator) makes every tenant look deleted: a sweep or `reconcile` would downgrade them all to
the free tier. Moving a database to another account on purpose is `billing-sync account repin`.

Caveat: a worker that starts while Stripe is unreachable starts unchecked (with a warning); the
scheduler's jobs check before each run, and `reconcile`, `catalog sync` and `up` wait for Stripe.
"""
from __future__ import annotations

import threading
import time

import structlog
from sqlalchemy.exc import IntegrityError

from ..bms.port import BillingGateway
from ..errors import SafetyRefusal, TransientError
from ..models import UnitOfWork
from .dependencies import Clock, UowFactory

log = structlog.get_logger(__name__)

PIN = "stripe.account"


class WrongStripeAccount(SafetyRefusal):
    pass


def pinned_account(uow: UnitOfWork) -> str | None:
    """The pinned Stripe account id, if any (read in `uow`'s transaction)."""
    return uow.cursors.value(PIN)


def check_account(*, gateway: BillingGateway, uow_factory: UowFactory, now: Clock, pin: bool = True) -> str:
    """The id of the key's Stripe account, after checking it against the pin (and, with `pin`,
    pinning it when nothing is pinned yet). Raises `WrongStripeAccount` on a mismatch."""
    account_id = gateway.stripe_account_id()
    for _ in range(2):  # a second round when another role pinned at the same moment
        with uow_factory() as uow:
            row = uow.cursors.get(PIN)
            if row is not None:
                if row.value != account_id:
                    raise WrongStripeAccount(
                        f"BILLING_STRIPE_API_KEY belongs to Stripe account {account_id}, but this database "
                        f"is pinned to {row.value} (since {row.updated_at:%Y-%m-%d %H:%M} UTC). Use that "
                        f"account's key, or this account's own database; to move this database to "
                        f"{account_id} on purpose, run `billing-sync account repin --from {row.value}`")
                return account_id
            if not pin:
                return account_id
            uow.cursors.set(PIN, account_id, now())
            try:
                uow.commit()
            except IntegrityError:
                continue
        log.info("stripe.account_pinned", account=account_id)
        return account_id
    raise TransientError("could not pin the Stripe account")  # pragma: no cover (two races in a row)


def verify_account(*, gateway: BillingGateway, uow_factory: UowFactory, now: Clock, pin: bool = True,
                   wait_s: float = 30.0, stop: threading.Event | None = None) -> str:
    """`check_account` at a role's start-up, waiting out a Stripe blip for up to `wait_s`
    (returns early, raising, when `stop` is set). Raises `TransientError` when Stripe stayed
    unreachable, `WrongStripeAccount` on a mismatch."""
    deadline = time.monotonic() + wait_s
    stop = stop or threading.Event()
    delay = 0.5
    while True:
        try:
            return check_account(uow_factory=uow_factory, gateway=gateway, now=now, pin=pin)
        except TransientError as exc:
            if stop.is_set() or time.monotonic() + delay > deadline:
                raise TransientError(f"cannot check the Stripe account: {exc}") from exc
            log.warning("stripe.account_check_retry", error=str(exc)[:200], retry_in_s=delay)
            stop.wait(delay)
            delay = min(delay * 2, 5.0)


def verify_account_if_reachable(*, gateway: BillingGateway, uow_factory: UowFactory, now: Clock) -> str | None:
    """For long-running roles (worker, scheduler): refuse another account at start-up, but start
    while Stripe is unreachable (one attempt; a warning) rather than crash-loop through a Stripe
    outage. The scheduler checks again before every job that reads Stripe."""
    try:
        return check_account(uow_factory=uow_factory, gateway=gateway, now=now)
    except TransientError as exc:
        log.warning("stripe.account_unchecked", error=str(exc)[:200])
        return None


def repin(expected_old: str, *, gateway: BillingGateway, uow_factory: UowFactory, now: Clock) -> str:
    """Point the pin at the key's current account, if the pin still says `expected_old` (typed
    by the operator, so a repin is never an accident). Returns the new account id."""
    account_id = gateway.stripe_account_id()
    with uow_factory() as uow:
        current = uow.cursors.value(PIN)
        if current != expected_old:
            raise WrongStripeAccount(f"this database is pinned to {current or 'no account'}, not {expected_old}; "
                                     "nothing changed")
        uow.cursors.set(PIN, account_id, now())
        uow.commit()
    log.warning("stripe.account_repinned", old=expected_old, new=account_id)
    return account_id
