"""Stripe, behind a port. `port.py` is the `BillingGateway` protocol and the typed views the
handlers use (intents such as `live_subscriptions`, `schedule_cancel`); `requests.py` turns each
intent into its Stripe request (parameters, query escaping, idempotency keys); `gateway.py` is the
one module of the service that talks to the `stripe` SDK; `rate_limit.py` keeps the fleet under
Stripe's request rate; `catalog_sync.py` creates the plan catalog's prices and meters.

The rule: Stripe's wire vocabulary stays in this package. Handlers depend on `port.py` only, never
on `gateway.py`, `requests.py` or the SDK (tests/unit/test_handler_imports.py checks it)."""
