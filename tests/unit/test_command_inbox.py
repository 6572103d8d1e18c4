"""The command inbox on SQLite with the FakeGateway: commands of one tenant in receive order
(a later one is parked, then sent again when the earlier one has its outcome), and the repair
job that sends again what the broker lost, without ever leaving a command with no outcome."""
from __future__ import annotations

import uuid
from types import SimpleNamespace

import pytest
from sqlalchemy import select, update

from billing_sync.client import command_envelope
from billing_sync.contract.commands import parse_command
from billing_sync.handlers import command_inbox
from billing_sync.handlers.command_dispatch import handle_command
from billing_sync.models import CommandInbox, DeadLetter, OutboxMessage

from fakes import FakeWorld


class Inbox(FakeWorld):
    """A FakeWorld whose commands go through the inbox as the bridge would put them there."""

    def __init__(self, engine, settings):
        super().__init__(engine, settings)
        self.sent: list[dict] = []  # what was sent to the workers (again)

    def receive(self, type: str, tenant: str, data: dict | None = None) -> dict:
        envelope = command_envelope(type, tenant, data or {}, id=str(uuid.uuid4()))
        assert self.bus.call(command_inbox.record_received, parse_command(envelope), envelope) is True
        return envelope

    def work(self, envelope: dict) -> str:
        """What the apply_command actor does with one delivery."""
        outcome = self.bus.call(handle_command, envelope)
        if outcome != "waiting":
            self.bus.call(command_inbox.send_next, envelope, self.sent.append)
        return outcome

    def outcomes(self, command_id: str) -> list[dict]:
        with self.bus.uow_factory() as uow:
            rows = uow.session.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars().all()
            return [{**r.data, "event": r.type} for r in rows if r.data.get("command_id") == command_id]

    def row(self, command_id: str) -> SimpleNamespace:
        with self.bus.uow_factory() as uow:
            row = uow.session.execute(select(CommandInbox).where(CommandInbox.command_id == command_id)).scalar_one()
            return SimpleNamespace(repairs=row.repairs, finished_at=row.finished_at, waiting_since=row.waiting_since)

    def repair(self, older_than_s: float = 0.0) -> dict:
        return self.bus.call(command_inbox.repair, self.sent.append, older_than_s=older_than_s)


PROVISION = {"name": "Acme", "email": "a@example.test", "plan": "starter", "payment_method": "pm_card_visa"}


@pytest.fixture
def inbox(sqlite_engine, make_settings):
    return Inbox(sqlite_engine, make_settings())


def test_a_change_delivered_before_its_tenants_provisioning_waits_for_it(inbox):
    tenant = "t-order"
    provisioned = inbox.receive("billing.tenant.provisioned", tenant, PROVISION)
    change = inbox.receive("billing.subscription.change", tenant, {"seats": 4})

    assert inbox.work(change) == "waiting"  # a worker got it first: parked, no outcome, no Stripe call
    assert inbox.outcomes(change["id"]) == [] and inbox.gw.customers == {}
    assert inbox.work(provisioned) == "completed"
    assert [e["id"] for e in inbox.sent] == [change["id"]]  # its turn came: sent again
    assert inbox.work(inbox.sent[0]) == "completed"

    (sub,) = inbox.gw.subscriptions.values()
    assert sub["items"]["data"][0]["quantity"] == 4
    assert [o["event"] for o in inbox.outcomes(change["id"])] == ["billing.command.completed"]
    assert inbox.row(change["id"]).finished_at is not None and inbox.row(provisioned["id"]).finished_at is not None


def test_an_earlier_command_that_fails_unblocks_the_next(inbox):
    tenant = "t-fail-first"
    bad = inbox.receive("billing.tenant.provisioned", tenant, {**PROVISION, "plan": "platinum"})
    change = inbox.receive("billing.subscription.change", tenant, {"seats": 2})
    assert inbox.work(change) == "waiting"
    assert inbox.work(bad) == "failed"
    assert inbox.work(inbox.sent.pop()) == "failed"
    assert [o["reason"] for o in inbox.outcomes(bad["id"]) + inbox.outcomes(change["id"])] == \
        ["unknown_plan", "unknown_tenant"]


def test_commands_of_other_tenants_and_commands_outside_the_inbox_do_not_wait(inbox):
    inbox.receive("billing.tenant.provisioned", "t-slow", PROVISION)  # never delivered
    other = inbox.receive("billing.tenant.deleted", "t-other")
    assert inbox.work(other) == "completed"
    replay = command_envelope("billing.tenant.deleted", "t-slow", {}, id="replayed-without-inbox-row")
    assert inbox.bus.call(handle_command, replay) == "completed"


def test_a_finished_command_received_again_is_not_sent_again(inbox):
    envelope = inbox.receive("billing.tenant.deleted", "t-dup")
    cmd = parse_command(envelope)
    assert inbox.bus.call(command_inbox.record_received, cmd, envelope) is True  # no outcome yet: send (again)
    assert inbox.work(envelope) == "completed"
    assert inbox.bus.call(command_inbox.record_received, cmd, envelope) is False


def test_repair_resends_the_first_lost_command_of_each_tenant_once_it_is_old_enough(inbox):
    lost = inbox.receive("billing.tenant.provisioned", "t-lost", PROVISION)
    behind = inbox.receive("billing.subscription.change", "t-lost", {"seats": 3})
    elsewhere = inbox.receive("billing.tenant.deleted", "t-elsewhere")

    assert inbox.repair(older_than_s=60) == {"resent": 0, "failed": 0, "pruned": 0}  # may still be queued
    assert inbox.repair(older_than_s=0)["resent"] == 2
    assert [e["id"] for e in inbox.sent] == [lost["id"], elsewhere["id"]]  # `behind` waits for `lost`
    assert inbox.row(lost["id"]).repairs == 1

    assert inbox.work(inbox.sent[0]) == "completed"
    assert [e["id"] for e in inbox.sent[2:]] == []  # `behind` was never parked: nobody to wake
    assert inbox.repair(older_than_s=0)["resent"] == 2  # now `behind` is first (and elsewhere again)
    assert behind["id"] in [e["id"] for e in inbox.sent[2:]]


def test_repair_sends_a_parked_command_whose_turn_came_at_once(inbox):
    first = inbox.receive("billing.tenant.provisioned", "t-parked", PROVISION)
    parked = inbox.receive("billing.subscription.change", "t-parked", {"seats": 3})
    assert inbox.work(parked) == "waiting"
    assert inbox.bus.call(handle_command, first) == "completed"  # the worker died before send_next
    assert inbox.repair(older_than_s=3600)["resent"] == 1
    assert [e["id"] for e in inbox.sent] == [parked["id"]]
    assert inbox.work(inbox.sent[0]) == "completed"


def test_repair_gives_a_command_that_never_finishes_its_one_failed_outcome(inbox):
    stuck = inbox.receive("billing.tenant.provisioned", "t-stuck", PROVISION)
    after = inbox.receive("billing.tenant.deleted", "t-stuck")
    assert inbox.work(after) == "waiting"
    with inbox.bus.uow_factory() as uow:
        uow.session.execute(update(CommandInbox).where(CommandInbox.command_id == stuck["id"])
                            .values(repairs=command_inbox.REPAIR_LIMIT))
        uow.commit()

    assert inbox.repair(older_than_s=0)["failed"] == 1
    (failed,) = inbox.outcomes(stuck["id"])
    assert (failed["event"], failed["reason"]) == ("billing.command.failed", "bms_unavailable")
    with inbox.bus.uow_factory() as uow:
        letters = [(d.source, d.message_id) for d in uow.session.execute(select(DeadLetter)).scalars()]
    assert letters == [("inbox", stuck["id"])]
    assert [e["id"] for e in inbox.sent] == [after["id"]]  # and the next one's turn came
    assert inbox.bus.call(handle_command, stuck) == "duplicate"  # a late first delivery changes nothing
    assert len(inbox.outcomes(stuck["id"])) == 1
