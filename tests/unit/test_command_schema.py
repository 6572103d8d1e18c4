"""The command contract: which CloudEvents are valid commands, and what an invalid one reports."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from billing_sync.client import command_envelope
from billing_sync.errors import InvalidMessage
from billing_sync.handlers.command_schema import (COMMAND_TYPES, SubscriptionCancel, TenantProvisioned, UsageRecorded,
                                                  parse_command, readable_ids)
from billing_sync.handlers.registry import COMMAND_HANDLERS


def envelope(type="billing.subscription.change", data=None, **attrs) -> dict:
    event = {"specversion": "1.0", "id": "cmd-1", "source": "app", "type": type, "subject": "t1",
             "time": "2026-11-02T12:00:00Z", "datacontenttype": "application/json",
             "data": {"tenant_id": "t1", "seats": 2} if data is None else data}
    event.update(attrs)
    return {k: v for k, v in event.items() if v is not ...}


def test_every_contract_type_has_a_model_and_a_handler():
    assert COMMAND_TYPES == set(COMMAND_HANDLERS) == {
        "billing.tenant.provisioned", "billing.tenant.updated", "billing.subscription.change",
        "billing.subscription.cancel", "billing.subscription.resume", "billing.tenant.deleted",
        "billing.usage.recorded"}


def test_a_valid_command():
    cmd = parse_command(envelope())
    assert (cmd.id, cmd.type, cmd.tenant_id, cmd.short_type) == ("cmd-1", "billing.subscription.change", "t1",
                                                                 "subscription.change")
    assert cmd.data.seats == 2 and cmd.data.plan is None
    assert cmd.time == datetime(2026, 11, 2, 12, tzinfo=timezone.utc)


def test_the_client_builds_valid_commands_for_every_type():
    samples = {
        "billing.tenant.provisioned": {"name": "A", "email": "a@x.test", "plan": "pro", "seats": 2, "trial_days": 14,
                                       "payment_method": "pm_card_visa"},
        "billing.tenant.updated": {"name": "B", "address": {"city": "Berlin", "country": "DE"}},
        "billing.subscription.change": {"plan": "pro"},
        "billing.subscription.cancel": {"at_period_end": False},
        "billing.subscription.resume": {},
        "billing.tenant.deleted": {},
        "billing.usage.recorded": {"meter": "api_calls", "quantity": 3, "timestamp": "2026-11-02T12:00:00Z"},
    }
    for type, data in samples.items():
        cmd = parse_command(command_envelope(type, "t1", data))
        assert cmd.type == type and cmd.tenant_id == "t1"
    assert parse_command(command_envelope("subscription.resume", "t1", {})).type == "billing.subscription.resume"


def test_defaults_and_conversions():
    assert parse_command(envelope("billing.subscription.cancel", {})).data == SubscriptionCancel(at_period_end=True)
    usage = parse_command(envelope("billing.usage.recorded", {"meter": "api_calls", "quantity": 5,
                                                               "timestamp": 1_790_000_000})).data
    assert isinstance(usage, UsageRecorded) and usage.timestamp.tzinfo is not None
    assert usage.timestamp.timestamp() == 1_790_000_000


def test_tenant_comes_from_data_or_subject_and_they_must_agree():
    assert parse_command(envelope(data={"seats": 1})).tenant_id == "t1"  # subject only
    assert parse_command(envelope(subject=..., data={"tenant_id": "t2"})).tenant_id == "t2"
    with pytest.raises(InvalidMessage, match="disagree"):
        parse_command(envelope(data={"tenant_id": "t2"}))
    with pytest.raises(InvalidMessage, match="no tenant"):
        parse_command(envelope(subject=..., data={"seats": 1}))


def test_unknown_fields_in_data_are_ignored():
    cmd = parse_command(envelope(data={"tenant_id": "t1", "seats": 2, "coupon": "X"}))
    assert cmd.data.seats == 2


@pytest.mark.parametrize("bad, where", [
    ("not a dict", "not a CloudEvents"),
    (envelope(specversion="0.3"), "specversion"),
    (envelope(specversion=...), "specversion"),
    (envelope(id=...), "id"),
    (envelope(id=""), "id"),
    (envelope(id="x" * 201), "id"),
    (envelope(source=...), "source"),
    (envelope(type="billing.tenant.teleported"), "unknown command type"),
    (envelope(type="tenant.provisioned"), "unknown command type"),
    (envelope(datacontenttype="application/xml"), "JSON"),
    (envelope(data={"seats": "many"}), "data.seats"),
    (envelope(data={"seats": 0}), "data.seats"),
    (envelope(data={"tenant_id": "it's"}), "data.tenant_id"),
    (envelope(subject="a b", data={}), "subject"),
    (envelope("billing.tenant.provisioned", {"name": "A"}), "data.email"),
    (envelope("billing.tenant.provisioned", {"name": "A", "email": "not-an-email"}), "data.email"),
    (envelope("billing.tenant.provisioned", {"name": "A", "email": "a@x.test", "trial_days": -1}), "trial_days"),
    (envelope("billing.usage.recorded", {"meter": "api_calls", "quantity": -3}), "quantity"),
    (envelope("billing.usage.recorded", {"quantity": 3}), "data.meter"),
    (envelope("billing.subscription.cancel", {"at_period_end": "sometimes"}), "at_period_end"),
    (envelope("billing.tenant.updated", {"address": {"planet": "Mars"}}), "address"),
])
def test_invalid_commands_say_what_is_wrong(bad, where):
    with pytest.raises(InvalidMessage, match=where):
        parse_command(bad)


def test_readable_ids_of_invalid_envelopes():
    assert readable_ids(envelope(data={"seats": "many"})) == ("cmd-1", "t1", "billing.subscription.change")
    assert readable_ids(envelope(subject=..., data=["x"])) == ("cmd-1", None, "billing.subscription.change")
    assert readable_ids({"id": 5, "type": "x" * 500}) == (None, None, None)
    assert readable_ids("garbage") == (None, None, None)


def test_provisioned_payment_method_is_optional():
    data = parse_command(envelope("billing.tenant.provisioned", {"name": "A", "email": "a@x.test"})).data
    assert isinstance(data, TenantProvisioned) and data.payment_method is None and data.plan is None
