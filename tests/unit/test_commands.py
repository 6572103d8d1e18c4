"""Product commands against the FakeGateway and a SQLite unit of work: each command's effect in
"Stripe", its one outcome event, and exactly-once under duplicates, crashes and retries."""
from __future__ import annotations

import time
import uuid
from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from billing_sync.client import command_envelope
from billing_sync.errors import TransientError
from billing_sync.handlers.command_dispatch import fail_command, handle_command
from billing_sync.models import OutboxMessage, ProcessedMessage, Subscription, Tenant, UsageCounter
from fakes import FakeWorld


class World(FakeWorld):
    def envelope(self, type: str, tenant: str, data: dict | None = None, id: str | None = None) -> dict:
        return command_envelope(type, tenant, data or {}, id=id or str(uuid.uuid4()))

    def send(self, type: str, tenant: str, data: dict | None = None, id: str | None = None) -> tuple[str, dict]:
        envelope = self.envelope(type, tenant, data, id)
        return self.bus.call(handle_command, envelope), envelope

    def provision(self, tenant: str, **data) -> dict:
        payload = {"name": "Acme", "email": f"{tenant}@example.test", "plan": "starter",
                   "payment_method": "pm_card_visa", **data}
        outcome, envelope = self.send("billing.tenant.provisioned", tenant, payload)
        assert outcome == "completed", self.outcomes()
        return self.outcome(envelope["id"])

    def outcomes(self, command_id: str | None = None) -> list[dict]:
        with self.bus.uow_factory() as uow:
            rows = uow.session.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars().all()
            found = [{**r.data, "event": r.type, "subject": r.subject} for r in rows
                     if r.type.startswith("billing.command.")]
        return [o for o in found if command_id is None or o["command_id"] == command_id]

    def outcome(self, command_id: str) -> dict:
        (only,) = self.outcomes(command_id)
        return only

    def tenant(self, tenant_id: str) -> SimpleNamespace | None:
        with self.bus.uow_factory() as uow:
            row = uow.session.get(Tenant, tenant_id)
            return row and SimpleNamespace(name=row.name, email=row.email, deleted=row.deleted,
                                           stripe_customer_id=row.stripe_customer_id)

    def customers(self, tenant_id: str) -> list[dict]:
        return [c for c in self.gw.customers.values() if c["metadata"].get("tenant_id") == tenant_id]

    def subscriptions(self, tenant_id: str) -> list[dict]:
        ids = {c["id"] for c in self.customers(tenant_id)}
        return [s for s in self.gw.subscriptions.values() if s["customer"] in ids]

    def only_subscription(self, tenant_id: str) -> dict:
        (sub,) = self.subscriptions(tenant_id)
        return sub


@pytest.fixture
def world(sqlite_engine, make_settings):
    return World(sqlite_engine, make_settings())


def test_an_unreachable_database_is_a_transient_failure(make_settings, tmp_path):
    from sqlalchemy import create_engine

    world = World(create_engine(f"sqlite:///{tmp_path}/no-such-dir/billing.db"), make_settings())
    envelope = world.envelope("billing.subscription.cancel", "t1")
    with pytest.raises(TransientError, match="database unavailable"):
        world.bus.call(handle_command, envelope)
    with pytest.raises(TransientError, match="database unavailable"):
        world.bus.call(fail_command, envelope, "bms_unavailable", "gave up")
    assert world.gw.calls == []


# -- billing.tenant.provisioned ---------------------------------------------------------------

def test_provisioned_creates_customer_and_subscription_once(world):
    outcome, env = world.send("billing.tenant.provisioned", "t1", {
        "name": "Acme", "email": "a@acme.test", "plan": "pro", "seats": 3, "payment_method": "pm_card_visa"})
    assert outcome == "completed"
    (customer,) = world.customers("t1")
    assert (customer["name"], customer["email"]) == ("Acme", "a@acme.test")
    assert customer["invoice_settings"]["default_payment_method"]
    sub = world.only_subscription("t1")
    item = sub["items"]["data"][0]
    assert (item["price"]["lookup_key"], item["quantity"], sub["status"]) == ("pro_monthly", 3, "active")
    done = world.outcome(env["id"])
    assert done["event"] == "billing.command.completed" and done["subject"] == "t1"
    assert done["tenant_id"] == "t1" and done["type"] == "billing.tenant.provisioned"
    assert done["stripe_customer_id"] == customer["id"] and done["subscription_id"] == sub["id"]
    tenant = world.tenant("t1")
    assert (tenant.name, tenant.email, tenant.stripe_customer_id) == ("Acme", "a@acme.test", customer["id"])
    # Billing state comes back through webhooks, not from the command.
    with world.bus.uow_factory() as uow:
        assert uow.session.scalar(select(func.count()).select_from(Subscription)) == 0
        ledger = uow.session.get(ProcessedMessage, env["id"])
        assert (ledger.kind, ledger.outcome, ledger.type) == ("command", "completed", "billing.tenant.provisioned")


def test_every_stripe_write_carries_a_key_derived_from_the_command_id(world):
    env = world.envelope("billing.tenant.provisioned", "t1", {
        "name": "A", "email": "a@x.test", "payment_method": "pm_card_visa"}, id="cmd-42")
    world.bus.call(handle_command, env)
    keys = [args[-1] for name, args in world.gw.calls if name.startswith("create_")]
    assert keys == ["cmd-42:customer", "cmd-42:subscription"]


def test_provisioned_defaults_to_the_default_plan_and_accepts_lookup_keys(world):
    world.send("billing.tenant.provisioned", "t1", {"name": "A", "email": "a@x.test", "payment_method": "pm_card_visa"})
    world.send("billing.tenant.provisioned", "t2", {"name": "B", "email": "b@x.test", "plan": "enterprise_monthly",
                                                    "payment_method": "pm_card_visa"})
    assert world.only_subscription("t1")["items"]["data"][0]["price"]["lookup_key"] == "starter_monthly"
    assert world.only_subscription("t2")["items"]["data"][0]["price"]["lookup_key"] == "enterprise_monthly"


def test_provisioned_with_a_trial_needs_no_payment_method(world):
    outcome, env = world.send("billing.tenant.provisioned", "t1",
                              {"name": "A", "email": "a@x.test", "trial_days": 14})
    assert outcome == "completed"
    sub = world.only_subscription("t1")
    assert sub["status"] == "trialing" and sub["trial_end"] - sub["trial_start"] == 14 * 86400
    assert world.outcome(env["id"])["subscription_status"] == "trialing"


def test_provisioned_without_payment_method_or_trial_fails_payment_required(world):
    outcome, env = world.send("billing.tenant.provisioned", "t1", {"name": "A", "email": "a@x.test"})
    assert outcome == "failed"
    failed = world.outcome(env["id"])
    assert (failed["event"], failed["reason"]) == ("billing.command.failed", "payment_required")
    assert world.subscriptions("t1") == []
    assert failed["stripe_customer_id"] == world.customers("t1")[0]["id"]  # identity is kept


def test_provisioned_with_the_first_payment_in_app_needs_no_card_and_grants_nothing_yet(world):
    """`first_payment: in_app`: an `incomplete` subscription (Stripe's default_incomplete, the card
    saved on it once paid) and, in the outcome, the first payment for Stripe.js to confirm."""
    outcome, env = world.send("billing.tenant.provisioned", "t1",
                              {"name": "A", "email": "a@x.test", "plan": "pro", "first_payment": "in_app"})
    assert outcome == "completed"
    sub = world.only_subscription("t1")
    assert sub["status"] == "incomplete"
    (created,) = [args[0] for name, args in world.gw.calls if name == "create_subscription"]
    assert created["payment_behavior"] == "default_incomplete"
    assert created["payment_settings"] == {"save_default_payment_method": "on_subscription"}
    done = world.outcome(env["id"])
    assert done["subscription_status"] == "incomplete"
    pending = done["pending_payment"]
    assert pending["subscription_id"] == sub["id"] and pending["invoice_id"] == sub["latest_invoice"]
    assert pending["client_secret"].startswith("pi_") and pending["amount_due"] == 4900
    assert pending["currency"] == "usd" and pending["expires_at"]
    # Redelivered: the ledger answers; the same command again (a retry) finds the same payment.
    assert world.bus.call(handle_command, env) == "duplicate"


def test_first_payment_must_be_charge_or_in_app(world):
    outcome, env = world.send("billing.tenant.provisioned", "t1",
                              {"name": "A", "email": "a@x.test", "first_payment": "later"})
    assert outcome == "failed" and world.outcome(env["id"])["reason"] == "invalid"


def test_provisioned_free_plan_makes_a_customer_only(world):
    outcome, env = world.send("billing.tenant.provisioned", "t1", {"name": "A", "email": "a@x.test", "plan": "free"})
    assert outcome == "completed"
    assert len(world.customers("t1")) == 1 and world.subscriptions("t1") == []
    assert world.outcome(env["id"])["subscription_id"] is None


def test_provisioned_reuses_a_customer_made_by_staff(world):
    staff = world.gw.add_customer("t1", name="Made by staff",
                                  invoice_settings={"default_payment_method": "pm_x"})
    outcome, env = world.send("billing.tenant.provisioned", "t1", {"name": "A", "email": "a@x.test"})
    assert outcome == "completed"
    assert world.gw.count("create_customer") == 0
    assert world.only_subscription("t1")["customer"] == staff["id"]
    assert world.tenant("t1").stripe_customer_id == staff["id"]


def test_provisioned_twice_with_different_ids_keeps_one_subscription(world):
    world.provision("t1")
    world.provision("t1")
    assert len(world.customers("t1")) == 1 and len(world.subscriptions("t1")) == 1
    assert len(world.outcomes()) == 2  # each command has its own outcome


def test_provisioned_with_test_clocks_puts_the_customer_on_a_clock(world):
    world.bus = world.bus.replace(settings=world.bus.settings.model_copy(update={"stripe_test_clocks": True}))
    done = world.provision("t1")
    (customer,) = world.customers("t1")
    clock = world.gw.test_clocks[customer["test_clock"]]
    assert done["test_clock"] == clock["id"]
    assert abs(clock["frozen_time"] - time.time()) < 60


def test_card_declined_fails_with_card_declined(world):
    outcome, env = world.send("billing.tenant.provisioned", "t1", {
        "name": "A", "email": "a@x.test", "plan": "pro", "payment_method": "pm_card_chargeDeclined"})
    assert outcome == "failed"
    failed = world.outcome(env["id"])
    assert (failed["event"], failed["reason"], failed["command_id"]) == ("billing.command.failed", "card_declined",
                                                                         env["id"])
    assert failed["detail"]
    assert world.customers("t1") == [] and world.subscriptions("t1") == []
    # permanent: a redelivery is a duplicate, not a retry
    assert world.bus.call(handle_command, env) == "duplicate"
    assert len(world.outcomes()) == 1


def test_unknown_plan_fails_before_anything_is_created(world):
    outcome, env = world.send("billing.tenant.provisioned", "t1", {"name": "A", "email": "a@x.test",
                                                                   "plan": "platinum"})
    assert outcome == "failed"
    assert world.outcome(env["id"])["reason"] == "unknown_plan"
    assert world.gw.count("create_customer") == 0


def test_plan_without_a_price_in_stripe_is_unknown(world):
    world.gw.prices[world.prices["pro"]["id"]]["active"] = False
    outcome, env = world.send("billing.tenant.provisioned", "t1", {"name": "A", "email": "a@x.test", "plan": "pro",
                                                                   "payment_method": "pm_card_visa"})
    assert world.outcome(env["id"])["reason"] == "unknown_plan"


# -- exactly once: duplicates, crashes, retries --------------------------------------------------

def test_a_duplicate_command_changes_and_publishes_nothing(world):
    env = world.envelope("billing.tenant.provisioned", "t1", {"name": "A", "email": "a@x.test",
                                                              "payment_method": "pm_card_visa"})
    assert world.bus.call(handle_command, env) == "completed"
    world.gw.reset_calls()
    assert world.bus.call(handle_command, env) == "duplicate"
    assert world.gw.calls == []
    assert len(world.outcomes()) == 1


def test_interrupted_between_two_stripe_calls_then_retried_makes_one_of_each(world):
    env = world.envelope("billing.tenant.provisioned", "t1", {"name": "A", "email": "a@x.test",
                                                              "payment_method": "pm_card_visa"})
    world.gw.fail_next("create_subscription", TransientError("stripe 503"))
    with pytest.raises(TransientError):
        world.bus.call(handle_command, env)
    assert world.outcomes() == []  # nothing committed: no ledger row, no event
    assert world.tenant("t1") is None or world.tenant("t1").stripe_customer_id is None
    assert world.bus.call(handle_command, env) == "completed"
    assert len(world.customers("t1")) == 1 and len(world.subscriptions("t1")) == 1
    assert len(world.outcomes(env["id"])) == 1


def test_retry_after_stripe_applied_but_the_answer_was_lost(world, monkeypatch):
    """The worst crash: Stripe made the objects, we never committed. Stripe's search may lag, so
    the retry cannot rely on finding the customer: the idempotency keys must replay."""
    env = world.envelope("billing.tenant.provisioned", "t1", {"name": "A", "email": "a@x.test",
                                                              "payment_method": "pm_card_visa"})
    real_create = world.gw.create_subscription

    def create_then_crash(params, *, idempotency_key):
        real_create(params, idempotency_key=idempotency_key)
        raise TransientError("connection reset after the request was sent")

    monkeypatch.setattr(world.gw, "create_subscription", create_then_crash)
    monkeypatch.setattr(world.gw, "find_customer_for_tenant", lambda tenant_id: None)  # search lag
    with pytest.raises(TransientError):
        world.bus.call(handle_command, env)
    monkeypatch.setattr(world.gw, "create_subscription", real_create)
    assert world.bus.call(handle_command, env) == "completed"
    assert len(world.customers("t1")) == 1 and len(world.subscriptions("t1")) == 1
    assert world.gw.count("create_customer") == 2  # sent twice, replayed by Stripe
    assert world.outcome(env["id"])["subscription_id"] == world.only_subscription("t1")["id"]


def test_change_retried_after_stripe_applied_it_is_not_sent_again(world, monkeypatch):
    world.provision("t1")
    env = world.envelope("billing.subscription.change", "t1", {"plan": "pro", "seats": 4})
    real_update = world.gw.update_subscription

    def update_then_crash(*args, **kwargs):
        real_update(*args, **kwargs)
        raise TransientError("timeout")

    monkeypatch.setattr(world.gw, "update_subscription", update_then_crash)
    with pytest.raises(TransientError):
        world.bus.call(handle_command, env)
    monkeypatch.setattr(world.gw, "update_subscription", real_update)
    world.gw.reset_calls()
    assert world.bus.call(handle_command, env) == "completed"
    assert world.gw.count("update_subscription") == 0
    item = world.only_subscription("t1")["items"]["data"][0]
    assert (item["price"]["lookup_key"], item["quantity"]) == ("pro_monthly", 4)


def test_exhausted_retries_fail_once_with_bms_unavailable(world):
    world.provision("t1")
    env = world.envelope("billing.subscription.change", "t1", {"seats": 5})
    world.gw.fail_next("update_subscription", TransientError("stripe 503"), times=3)
    for _ in range(3):
        with pytest.raises(TransientError):
            world.bus.call(handle_command, env)
    assert world.bus.call(fail_command, env, "bms_unavailable", "stripe 503 after 3 attempts") == "failed"
    assert world.bus.call(fail_command, env, "bms_unavailable", "again") == "duplicate"
    assert world.bus.call(handle_command, env) == "duplicate"
    failed = world.outcome(env["id"])
    assert (failed["event"], failed["reason"], failed["tenant_id"]) == ("billing.command.failed", "bms_unavailable",
                                                                       "t1")
    assert failed["type"] == "billing.subscription.change"
    assert world.only_subscription("t1")["items"]["data"][0]["quantity"] == 1


def test_invalid_command_reaching_a_worker_fails_invalid_once(world):
    env = world.envelope("billing.subscription.change", "t1", {"seats": "many"}, id="cmd-bad")
    assert world.bus.call(handle_command, env) == "failed"
    assert world.bus.call(handle_command, env) == "duplicate"
    failed = world.outcome("cmd-bad")
    assert (failed["reason"], failed["tenant_id"], failed["event"]) == ("invalid", "t1", "billing.command.failed")
    assert "seats" in failed["detail"]


def test_an_invalid_command_does_not_use_up_its_id(world):
    world.provision("t1")
    bad = world.envelope("billing.subscription.change", "t1", {"seats": "3"}, id="cmd-reused")
    assert world.bus.call(handle_command, bad) == "failed"
    outcome, _ = world.send("billing.subscription.change", "t1", {"seats": 3}, id="cmd-reused")
    assert outcome == "completed"
    assert [o["event"] for o in world.outcomes("cmd-reused")] == ["billing.command.failed",
                                                                  "billing.command.completed"]
    assert world.only_subscription("t1")["items"]["data"][0]["quantity"] == 3


def test_a_name_with_nul_fails_invalid_before_any_stripe_call(world):
    outcome, env = world.send("billing.tenant.provisioned", "t1", {"name": "Acme\x00", "email": "a@x.test",
                                                                  "plan": "starter", "payment_method": "pm_card_visa"})
    assert outcome == "failed" and world.outcome(env["id"])["reason"] == "invalid"
    assert world.gw.calls == [] and world.customers("t1") == []


def test_usage_beyond_what_stripe_and_the_counter_take_fails_before_any_stripe_call(world):
    world.provision("t1")
    world.gw.reset_calls()
    outcome, env = world.send("billing.usage.recorded", "t1", {"meter": "api_calls", "quantity": 10**30,
                                                               "timestamp": "2026-11-02T12:00:00Z"})
    assert outcome == "failed" and world.outcome(env["id"])["reason"] == "invalid"
    assert world.gw.count("create_meter_event") == 0


def test_unknown_command_type_is_invalid(world):
    env = world.envelope("billing.tenant.teleported", "t1", {})
    assert world.bus.call(handle_command, env) == "failed"
    assert world.outcome(env["id"])["reason"] == "invalid"


# -- billing.tenant.updated --------------------------------------------------------------------

def test_updated_changes_the_customer_and_the_local_identity(world):
    world.provision("t1")
    outcome, env = world.send("billing.tenant.updated", "t1", {
        "name": "Acme GmbH", "address": {"line1": "Hauptstr. 1", "city": "Berlin", "country": "DE"}})
    assert outcome == "completed"
    (customer,) = world.customers("t1")
    assert customer["name"] == "Acme GmbH" and customer["address"]["city"] == "Berlin"
    assert customer["email"] == "t1@example.test"
    assert world.tenant("t1").name == "Acme GmbH"
    assert world.outcome(env["id"])["changed"] == ["address", "name"]


def test_commands_for_an_unknown_tenant_fail_unknown_tenant(world):
    for type, data in [("billing.tenant.updated", {"name": "X"}), ("billing.subscription.change", {"seats": 2}),
                       ("billing.subscription.cancel", {}), ("billing.subscription.resume", {}),
                       ("billing.usage.recorded", {"meter": "api_calls", "quantity": 1, "timestamp": 1_790_000_000})]:
        outcome, env = world.send(type, "nobody", data)
        assert outcome == "failed", type
        assert world.outcome(env["id"])["reason"] == "unknown_tenant", type
    assert [name for name, _ in world.gw.calls if not name.startswith(("find_", "list_"))] == []


# -- billing.subscription.change ---------------------------------------------------------------

def test_change_plan_and_seats(world):
    world.provision("t1")
    outcome, env = world.send("billing.subscription.change", "t1", {"plan": "pro", "seats": 6})
    assert outcome == "completed"
    sub = world.only_subscription("t1")
    item = sub["items"]["data"][0]
    assert (item["price"]["lookup_key"], item["quantity"]) == ("pro_monthly", 6)
    done = world.outcome(env["id"])
    assert done["subscription_id"] == sub["id"] and done["changed"] is True


def test_change_seats_only_keeps_the_plan(world):
    world.provision("t1", plan="pro")
    world.send("billing.subscription.change", "t1", {"seats": 2})
    item = world.only_subscription("t1")["items"]["data"][0]
    assert (item["price"]["lookup_key"], item["quantity"]) == ("pro_monthly", 2)


def test_change_already_in_place_sends_nothing(world):
    world.provision("t1", seats=2)
    world.gw.reset_calls()
    outcome, env = world.send("billing.subscription.change", "t1", {"plan": "starter", "seats": 2})
    assert outcome == "completed" and world.outcome(env["id"])["changed"] is False
    assert world.gw.count("update_subscription") == 0


def test_change_resumes_a_canceling_subscription(world):
    world.provision("t1")
    sub = world.only_subscription("t1")
    world.gw.set_subscription(sub["id"], cancel_at_period_end=True)
    world.send("billing.subscription.change", "t1", {"seats": 3})
    sub = world.only_subscription("t1")
    assert sub["cancel_at_period_end"] is False and sub["items"]["data"][0]["quantity"] == 3


def test_change_replaces_a_canceled_subscription(world):
    world.provision("t1", plan="pro", seats=4)
    old = world.only_subscription("t1")
    world.gw.set_subscription(old["id"], status="canceled")
    world.clock.advance(seconds=5)
    world.gw.reset_calls()
    outcome, env = world.send("billing.subscription.change", "t1", {"seats": 2})
    assert outcome == "completed"
    assert world.gw.count("list_subscriptions") == 1  # the listing that found none live names the last plan too
    subs = world.subscriptions("t1")
    assert sorted(s["status"] for s in subs) == ["active", "canceled"]
    new = next(s for s in subs if s["status"] == "active")
    item = new["items"]["data"][0]
    assert (item["price"]["lookup_key"], item["quantity"]) == ("pro_monthly", 2)  # the old plan
    done = world.outcome(env["id"])
    assert done["replaced"] == old["id"] and done["subscription_id"] == new["id"]


def test_change_to_a_plan_on_a_tenant_without_subscription_starts_one(world):
    world.send("billing.tenant.provisioned", "t1", {"name": "A", "email": "a@x.test", "plan": "free",
                                                    "payment_method": "pm_card_visa"})
    outcome, _ = world.send("billing.subscription.change", "t1", {"plan": "pro"})
    assert outcome == "completed"
    assert world.only_subscription("t1")["items"]["data"][0]["price"]["lookup_key"] == "pro_monthly"


def test_change_to_the_free_plan_or_an_unknown_plan_fails(world):
    world.provision("t1")
    _, free = world.send("billing.subscription.change", "t1", {"plan": "free"})
    _, unknown = world.send("billing.subscription.change", "t1", {"plan": "platinum"})
    assert world.outcome(free["id"])["reason"] == "invalid"
    assert world.outcome(unknown["id"])["reason"] == "unknown_plan"
    assert world.only_subscription("t1")["items"]["data"][0]["price"]["lookup_key"] == "starter_monthly"


# -- cancel, resume, delete --------------------------------------------------------------------

def test_cancel_defaults_to_period_end_and_resume_undoes_it(world):
    world.provision("t1")
    outcome, env = world.send("billing.subscription.cancel", "t1", {})
    assert outcome == "completed"
    sub = world.only_subscription("t1")
    assert sub["cancel_at_period_end"] is True and sub["status"] == "active"
    assert world.outcome(env["id"])["at_period_end"] is True
    outcome, env = world.send("billing.subscription.resume", "t1", {})
    assert outcome == "completed" and world.outcome(env["id"])["changed"] is True
    assert world.only_subscription("t1")["cancel_at_period_end"] is False


def test_cancel_now(world):
    world.provision("t1")
    outcome, env = world.send("billing.subscription.cancel", "t1", {"at_period_end": False})
    assert outcome == "completed"
    assert world.only_subscription("t1")["status"] == "canceled"
    assert world.outcome(env["id"])["subscription_status"] == "canceled"


def test_cancel_with_nothing_live_completes_without_stripe_writes(world):
    world.provision("t1")
    world.gw.set_subscription(world.only_subscription("t1")["id"], status="canceled")
    world.gw.reset_calls()
    outcome, env = world.send("billing.subscription.cancel", "t1", {"at_period_end": False})
    assert outcome == "completed" and world.outcome(env["id"])["subscription_id"] is None
    assert world.gw.count("cancel_subscription") == 0


def test_resume_without_a_live_subscription_is_invalid(world):
    world.provision("t1")
    world.gw.set_subscription(world.only_subscription("t1")["id"], status="canceled")
    outcome, env = world.send("billing.subscription.resume", "t1", {})
    assert outcome == "failed" and world.outcome(env["id"])["reason"] == "invalid"


def test_resume_with_nothing_scheduled_is_invalid(world):
    world.provision("t1")
    world.gw.reset_calls()
    outcome, env = world.send("billing.subscription.resume", "t1", {})
    failed = world.outcome(env["id"])
    assert outcome == "failed" and failed["reason"] == "invalid" and "nothing to resume" in failed["detail"]
    assert world.gw.count("update_subscription") == 0


def test_resume_clears_a_scheduled_cancel_at(world):
    world.provision("t1")
    sub = world.only_subscription("t1")
    world.gw.set_subscription(sub["id"], cancel_at=sub["items"]["data"][0]["current_period_end"])
    world.send("billing.subscription.resume", "t1", {})
    assert world.only_subscription("t1")["cancel_at"] is None


def test_deleted_cancels_every_live_subscription_now(world):
    world.provision("t1")
    customer_id = world.customers("t1")[0]["id"]
    extra = world.gw.add_subscription(customer_id, world.prices["pro"]["id"])
    outcome, env = world.send("billing.tenant.deleted", "t1", {})
    assert outcome == "completed"
    assert {s["status"] for s in world.subscriptions("t1")} == {"canceled"}
    assert extra["id"] in world.outcome(env["id"])["canceled"]
    assert world.tenant("t1").deleted is True
    outcome, env = world.send("billing.subscription.change", "t1", {"seats": 3})
    assert world.outcome(env["id"])["reason"] == "unknown_tenant"


def test_deleted_unknown_tenant_completes(world):
    outcome, env = world.send("billing.tenant.deleted", "ghost", {})
    assert outcome == "completed" and world.outcome(env["id"])["canceled"] == []


# -- billing.usage.recorded --------------------------------------------------------------------

def test_usage_counts_locally_and_sends_no_meter_event_of_its_own(world):
    world.provision("t1")
    ts = int(world.clock().timestamp())
    outcome, env = world.send("billing.usage.recorded", "t1", {"meter": "api_calls", "quantity": 42,
                                                               "timestamp": ts})
    assert outcome == "completed"
    world.send("billing.usage.recorded", "t1", {"meter": "api_calls", "quantity": 8, "timestamp": ts})
    assert world.bus.call(handle_command, env) == "duplicate"
    with world.bus.uow_factory() as uow:
        assert [c.used for c in uow.session.execute(select(UsageCounter)).scalars()] == [50]
    assert world.outcome(env["id"])["used"] == 42
    assert world.gw.meter_events == []   # metering sends the minute's usage as one event (test_metering.py)


def test_usage_for_an_unknown_meter_is_invalid(world):
    world.provision("t1")
    outcome, env = world.send("billing.usage.recorded", "t1", {"meter": "gpu_hours", "quantity": 1})
    assert outcome == "failed" and world.outcome(env["id"])["reason"] == "invalid"
    assert world.gw.meter_events == []


def test_updated_for_a_customer_deleted_in_stripe_is_unknown_tenant(world):
    world.provision("t1")
    world.customers("t1")[0]["deleted"] = True
    outcome, env = world.send("billing.tenant.updated", "t1", {"name": "X"})
    assert outcome == "failed" and world.outcome(env["id"])["reason"] == "unknown_tenant"


def _usage(world, tenant: str, quantity: int, at) -> dict:
    outcome, env = world.send("billing.usage.recorded", tenant, {"meter": "api_calls", "quantity": quantity,
                                                                 "timestamp": int(at.timestamp())})
    assert outcome == "completed", world.outcomes(env["id"])
    return world.outcome(env["id"])


def _used_now(world, tenant: str) -> int:
    from billing_sync.handlers.usage import current_usage

    with world.bus.uow_factory() as uow:
        return current_usage(uow, tenant, "api_calls", world.clock())


def test_usage_recorded_while_the_local_copy_lags_counts_in_the_real_period(world):
    """Webhooks delayed: the subscription is in Stripe but not yet in our copy."""
    from billing_sync.handlers.reconcile import reconcile_tenant

    world.provision("t1", plan="pro")  # Stripe's period starts now: 2 Nov 12:00, not a month start
    world.clock.advance(hours=1)
    assert _usage(world, "t1", 100, world.clock())["used"] == 100
    assert _used_now(world, "t1") == 100

    world.bus.call(reconcile_tenant, "t1")  # the copy catches up (what the delayed webhooks do)
    assert _used_now(world, "t1") == 100
    assert _usage(world, "t1", 5, world.clock())["used"] == 105


def test_usage_counts_in_the_period_its_own_timestamp_falls_in(world):
    from billing_sync.handlers.reconcile import reconcile_tenant

    world.provision("t1", plan="pro")
    sub = world.only_subscription("t1")
    world.bus.call(reconcile_tenant, "t1")
    start = world.clock()
    _usage(world, "t1", 7, start - timedelta(hours=1))  # before the subscription began: not this period
    world.clock.advance(days=29)
    assert _usage(world, "t1", 10, world.clock())["used"] == 10

    # Renewal: the next period begins; last period's usage stays there, late usage of it too.
    world.clock.advance(days=1, hours=1)
    item = world.gw.subscriptions[sub["id"]]["items"]["data"][0]
    item["current_period_start"], item["current_period_end"] = item["current_period_end"], item["current_period_end"] + 30 * 86400
    world.bus.call(reconcile_tenant, "t1")
    assert _used_now(world, "t1") == 0
    _usage(world, "t1", 3, start + timedelta(days=29, hours=1))  # recorded late, for the last period
    assert _usage(world, "t1", 4, world.clock())["used"] == 4
    assert _used_now(world, "t1") == 4


# -- a command racing a dashboard change -------------------------------------------------------

def _staff_act_right_after_our_read(world, act) -> None:
    """Staff change Stripe in the moment between the command's read of the subscriptions and
    its write (once)."""
    real = world.gw.list_subscriptions

    def read_then_act(**kw):
        subs = list(real(**kw))
        world.gw.list_subscriptions = real
        act()
        return iter(subs)

    world.gw.list_subscriptions = read_then_act


def _staff_cancel(world, sub_id: str):
    return lambda: world.gw.cancel_subscription(sub_id, idempotency_key=f"staff:cancel:{sub_id}")


@pytest.mark.parametrize("at_period_end", [False, True])
def test_cancel_racing_a_dashboard_cancel_completes(world, at_period_end):
    world.provision("t1")
    sub = world.only_subscription("t1")
    _staff_act_right_after_our_read(world, _staff_cancel(world, sub["id"]))
    outcome, env = world.send("billing.subscription.cancel", "t1", {"at_period_end": at_period_end})
    assert outcome == "completed", world.outcome(env["id"])
    assert world.only_subscription("t1")["status"] == "canceled"


def test_change_racing_a_dashboard_cancel_replaces_the_subscription(world):
    world.provision("t1", plan="starter")
    old = world.only_subscription("t1")
    _staff_act_right_after_our_read(world, _staff_cancel(world, old["id"]))
    outcome, env = world.send("billing.subscription.change", "t1", {"plan": "pro", "seats": 2})
    assert outcome == "completed", world.outcome(env["id"])
    new = next(s for s in world.subscriptions("t1") if s["status"] == "active")
    assert (new["items"]["data"][0]["price"]["lookup_key"], new["items"]["data"][0]["quantity"]) == ("pro_monthly", 2)
    assert world.outcome(env["id"])["replaced"] == old["id"]


def test_delete_racing_a_dashboard_cancel_completes(world):
    world.provision("t1")
    sub = world.only_subscription("t1")
    _staff_act_right_after_our_read(world, _staff_cancel(world, sub["id"]))
    outcome, env = world.send("billing.tenant.deleted", "t1", {})
    assert outcome == "completed", world.outcome(env["id"])
    assert world.only_subscription("t1")["status"] == "canceled"


def test_a_change_that_keeps_meeting_a_moving_state_is_retried_not_failed(world):
    """Re-decisions are bounded: if Stripe keeps moving, the worker retries (bms_unavailable at
    the very end), never a permanent failure with an undocumented reason."""
    world.provision("t1")

    def keep_replacing():
        for sub in world.subscriptions("t1"):
            if sub["status"] == "active":
                world.gw.cancel_subscription(sub["id"], idempotency_key=f"staff:{sub['id']}")
        world.gw.add_subscription(world.customers("t1")[0]["id"], world.prices["starter"]["id"])
        _staff_act_right_after_our_read(world, keep_replacing)

    _staff_act_right_after_our_read(world, keep_replacing)
    with pytest.raises(TransientError):
        world.bus.call(handle_command, world.envelope("billing.subscription.change", "t1", {"seats": 3}))
    assert world.outcomes() and all(o["event"] == "billing.command.completed" for o in world.outcomes())


# -- only documented reasons -------------------------------------------------------------------

def _readme_reasons() -> set[str]:
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = readme.split("| reason | meaning |", 1)[1].split("\n\n", 1)[0]
    return set(re.findall(r"^\| `([a-z_]+)` \|", table, flags=re.M))


def test_the_readme_documents_exactly_the_failure_reasons_of_the_contract():
    from billing_sync.contract.reasons import FailureReason

    assert _readme_reasons() == {reason.value for reason in FailureReason}


@pytest.mark.parametrize("reason, expected", [
    ("bms_unavailable", "bms_unavailable"), ("timeout", "bms_unavailable"), ("unavailable", "bms_unavailable"),
    ("internal_error", "internal_error"), ("not_found", "internal_error"), ("error", "internal_error"),
])
def test_a_failure_carries_a_documented_reason_whatever_raised_it(world, reason, expected):
    env = world.envelope("billing.subscription.cancel", "t1")
    assert world.bus.call(fail_command, env, reason, "gave up") == "failed"
    failed = world.outcome(env["id"])
    assert failed["reason"] == expected
    assert failed["detail"] == ("gave up" if reason == expected else f"{reason}: gave up")  # the original is kept


def test_a_payment_method_stripe_does_not_know_fails_invalid(world):
    from billing_sync.bms.gateway import NotFound

    world.gw.fail_next("create_customer", NotFound("No such PaymentMethod: 'pm_nope'"))
    outcome, env = world.send("billing.tenant.provisioned", "t1", {"name": "A", "email": "a@x.test",
                                                                   "payment_method": "pm_nope"})
    assert outcome == "failed" and world.outcome(env["id"])["reason"] == "invalid"


def test_every_stripe_card_error_is_card_declined_with_stripe_code_in_the_detail():
    import stripe

    from billing_sync.bms.gateway import StripeGateway
    from billing_sync.errors import PaymentFailed

    def expired(**_):
        raise stripe.CardError("Your card has expired.", "exp_month", "expired_card")

    with pytest.raises(PaymentFailed) as failed:
        StripeGateway("sk_test_x", api_base="http://127.0.0.1:1")._call(expired)
    assert failed.value.reason == "card_declined" and "expired_card" in str(failed.value)


# -- Stripe's search lags: one customer per tenant all the same ----------------------------------

def test_provisioning_again_while_search_lags_reuses_the_customer_made_before(world, monkeypatch):
    """The first attempt made the customer, then failed before its local commit (retries ran
    out); a second provisioning command cannot see the customer in Stripe's search yet."""
    monkeypatch.setattr(world.gw, "find_customer_for_tenant", lambda tenant_id: None)  # search lags
    world.gw.fail_next("create_subscription", TransientError("stripe 503"))
    first = world.envelope("billing.tenant.provisioned", "t1", {"name": "A", "email": "a@x.test",
                                                                "payment_method": "pm_card_visa"})
    with pytest.raises(TransientError):
        world.bus.call(handle_command, first)
    assert len(world.customers("t1")) == 1
    assert world.bus.call(fail_command, first, "bms_unavailable", "gave up") == "failed"

    outcome, env = world.send("billing.tenant.provisioned", "t1", {"name": "A", "email": "a@x.test",
                                                                   "payment_method": "pm_card_visa"})
    assert outcome == "completed"
    (customer,) = world.customers("t1")
    assert world.outcome(env["id"])["stripe_customer_id"] == customer["id"]
    assert world.only_subscription("t1")["customer"] == customer["id"]


def test_a_declined_first_provisioning_leaves_nothing_that_blocks_the_next(world, monkeypatch):
    monkeypatch.setattr(world.gw, "find_customer_for_tenant", lambda tenant_id: None)  # search lags
    _, declined = world.send("billing.tenant.provisioned", "t1", {"name": "A", "email": "a@x.test",
                                                                  "payment_method": "pm_card_chargeDeclined"})
    assert world.outcome(declined["id"])["reason"] == "card_declined"
    outcome, env = world.send("billing.tenant.provisioned", "t1", {"name": "A", "email": "a@x.test",
                                                                   "payment_method": "pm_card_visa"})
    assert outcome == "completed", world.outcome(env["id"])
    assert len(world.customers("t1")) == 1 and len(world.subscriptions("t1")) == 1
