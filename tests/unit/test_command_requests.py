"""The Stripe requests of every command, pinned byte for byte: a command retried across a deploy
repeats its request under the same idempotency key, so a refactoring must not change a parameter
or a key (Stripe would answer an idempotency error, or make a second object for a new key)."""
from __future__ import annotations

from datetime import UTC, datetime

from billing_sync.client import command_envelope
from billing_sync.handlers.command_dispatch import handle_command

from fakes import FakeWorld

AT = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
READS = ("retrieve_", "find_", "list_")


def test_every_command_sends_the_requests_it_always_sent(sqlite_engine, make_settings):
    world = FakeWorld(sqlite_engine, make_settings(stripe_test_clocks=True))

    def send(n: int, type: str, tenant: str, data: dict) -> None:
        envelope = command_envelope(type, tenant, data, id=f"cmd-{n}", time=AT)
        assert world.bus.call(handle_command, envelope) == "completed"

    send(1, "tenant.provisioned", "t1", {"name": "Acme", "email": "t1@example.test", "plan": "starter",
                                         "seats": 2, "payment_method": "pm_card_visa"})
    send(2, "tenant.updated", "t1", {"name": "Acme Ltd", "address": {"country": "DE", "city": "Berlin"}})
    send(3, "subscription.change", "t1", {"plan": "pro", "seats": 3})
    send(4, "subscription.cancel", "t1", {})
    send(5, "subscription.resume", "t1", {})
    sub_id = next(iter(world.gw.subscriptions))
    period_end = world.gw.subscriptions[sub_id]["items"]["data"][0]["current_period_end"]
    world.gw.set_subscription(sub_id, cancel_at=period_end)  # staff set a cancellation date
    send(6, "subscription.change", "t1", {"seats": 4})
    send(7, "usage.recorded", "t1", {"meter": next(iter(world.bus.catalog.meters)), "quantity": 5})
    world.gw.set_subscription(sub_id, cancel_at=period_end)
    send(8, "subscription.resume", "t1", {})
    send(9, "subscription.cancel", "t1", {"at_period_end": False})
    send(10, "subscription.change", "t1", {"plan": "pro"})
    send(11, "tenant.deleted", "t1", {})
    send(12, "tenant.provisioned", "t2", {"name": "Beta", "email": "t2@example.test", "plan": "pro", "trial_days": 7})

    writes = [(name, args) for name, args in world.gw.calls if not name.startswith(READS)]
    assert writes == EXPECTED


# What the handlers sent before the BillingGateway port existed (recorded from that code).
EXPECTED = [('create_test_clock', (1793611800, 'tenant t1', 'cmd-1:test_clock')),
           ('create_customer',
            ({'email': 't1@example.test',
              'invoice_settings': {'default_payment_method': 'pm_card_visa'},
              'metadata': {'tenant_id': 't1'},
              'name': 'Acme',
              'payment_method': 'pm_card_visa',
              'test_clock': 'clock_fake000007'},
             'cmd-1:customer')),
           ('create_subscription',
            ({'customer': 'cus_fake000009',
              'items': [{'price': 'price_fake000002', 'quantity': 2}],
              'metadata': {'tenant_id': 't1'},
              'payment_behavior': 'error_if_incomplete'},
             'cmd-1:subscription')),
           ('update_customer',
            ('cus_fake000009', {'address': {'city': 'Berlin', 'country': 'DE'}, 'name': 'Acme Ltd'}, 'cmd-2:customer')),
           ('update_subscription',
            ('sub_fake000010',
             {'items': [{'id': 'si_fake000011', 'price': 'price_fake000004', 'quantity': 3}],
              'proration_behavior': 'create_prorations'},
             'cmd-3:subscription_update:sub_fake000010:460afb3a6e8c2628')),
           ('update_subscription',
            ('sub_fake000010', {'cancel_at_period_end': True}, 'cmd-4:cancel_at_period_end:sub_fake000010')),
           ('update_subscription', ('sub_fake000010', {'cancel_at_period_end': False}, 'cmd-5:resume')),
           ('update_subscription',
            ('sub_fake000010',
             {'cancel_at': '', 'items': [{'id': 'si_fake000011', 'quantity': 4}], 'proration_behavior': 'create_prorations'},
             'cmd-6:subscription_update:sub_fake000010:ece7af4e688239bb')),
           # (cmd-7, usage.recorded, sends nothing: its usage is metered by minute window,
           # handlers/metering.py)
           ('update_subscription', ('sub_fake000010', {'cancel_at': ''}, 'cmd-8:resume')),
           ('cancel_subscription', ('sub_fake000010', 'cmd-9:cancel:sub_fake000010')),
           ('create_subscription',
            ({'customer': 'cus_fake000009',
              'items': [{'price': 'price_fake000004', 'quantity': 4}],
              'metadata': {'tenant_id': 't1'},
              'payment_behavior': 'error_if_incomplete'},
             'cmd-10:subscription')),
           ('cancel_subscription', ('sub_fake000012', 'cmd-11:cancel:sub_fake000012')),
           ('create_test_clock', (1793611800, 'tenant t2', 'cmd-12:test_clock')),
           ('create_customer',
            ({'email': 't2@example.test', 'metadata': {'tenant_id': 't2'}, 'name': 'Beta', 'test_clock': 'clock_fake000014'},
             'cmd-12:customer')),
           ('create_subscription',
            ({'customer': 'cus_fake000015',
              'items': [{'price': 'price_fake000004', 'quantity': 1}],
              'metadata': {'tenant_id': 't2'},
              'trial_period_days': 7},
             'cmd-12:subscription'))]
