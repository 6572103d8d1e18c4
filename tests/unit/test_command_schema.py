"""The command contract: which CloudEvents are valid commands, and what an invalid one reports."""
from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from billing_sync.client import command_envelope
from billing_sync.contract.commands import (
    COMMAND_TYPES,
    MAX_COMMAND_BYTES,
    MAX_QUANTITY,
    SubscriptionCancel,
    TenantProvisioned,
    UsageRecorded,
    decode_envelope,
    parse_command,
    readable_ids,
)
from billing_sync.errors import InvalidMessage
from billing_sync.handlers.registry import COMMAND_HANDLERS


def envelope(type="billing.subscription.change", data=None, **attrs) -> dict:
    event = {"specversion": "1.0", "id": "cmd-1", "source": "app", "type": type, "subject": "t1",
             "time": "2026-11-02T12:00:00Z", "datacontenttype": "application/json",
             "data": {"tenant_id": "t1", "seats": 2} if data is None else data}
    event.update(attrs)
    return {k: v for k, v in event.items() if v is not ...}


def test_every_contract_type_has_a_model_and_a_handler():
    assert COMMAND_TYPES == {data.TYPE for data in COMMAND_HANDLERS} == {
        "billing.tenant.provisioned", "billing.tenant.updated", "billing.subscription.change",
        "billing.subscription.cancel", "billing.subscription.resume", "billing.tenant.deleted",
        "billing.usage.recorded"}


def test_a_valid_command():
    cmd = parse_command(envelope())
    assert (cmd.id, cmd.type, cmd.tenant_id) == ("cmd-1", "billing.subscription.change", "t1")
    assert cmd.data.seats == 2 and cmd.data.plan is None
    assert cmd.time == datetime(2026, 11, 2, 12, tzinfo=UTC)


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


def test_a_change_takes_the_proration_date_of_its_preview():
    dated = parse_command(envelope(data={"seats": 2, "proration_date": 1796256000}))
    assert dated.data.proration_date == 1796256000
    assert parse_command(envelope(data={"seats": 2})).data.proration_date is None


def _nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


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
    # strict: no conversions
    (envelope(data={"seats": True}), "data.seats: Input should be a valid integer"),
    (envelope(data={"seats": "3"}), "data.seats: Input should be a valid integer"),
    (envelope(data={"seats": 3.0}), "data.seats: Input should be a valid integer"),
    (envelope("billing.subscription.cancel", {"at_period_end": "true"}), "at_period_end"),
    (envelope("billing.subscription.cancel", {"at_period_end": 1}), "at_period_end"),
    (envelope("billing.usage.recorded", {"meter": "api_calls", "quantity": "3"}), "quantity"),
    (envelope("billing.usage.recorded", {"meter": "api_calls", "quantity": True}), "quantity"),
    (envelope("billing.tenant.provisioned", {"name": 5, "email": "a@x.test"}), "data.name"),
    (envelope(id=7), "id"),
    (envelope(time=True), "time"),
    # upper bounds that fit Stripe and the columns
    (envelope("billing.usage.recorded", {"meter": "api_calls", "quantity": 10**30}), "quantity"),
    (envelope("billing.usage.recorded", {"meter": "api_calls", "quantity": 10**15}), "quantity"),
    (envelope(data={"seats": 2**31}), "data.seats"),
    (envelope(data={"seats": 2, "proration_date": "1796256000"}), "data.proration_date"),
    (envelope(data={"seats": 2, "proration_date": -1}), "data.proration_date"),
    (envelope(data={"seats": 2, "proration_date": 2**40}), "data.proration_date"),
    (envelope("billing.tenant.provisioned", {"name": "A" * 257, "email": "a@x.test"}), "data.name"),
    (envelope("billing.tenant.updated", {"address": {"city": "x" * 201}}), "address.city"),
    (envelope(source="s" * 1025), "source"),
    # control characters and lone surrogates in text
    (envelope("billing.tenant.provisioned", {"name": "Acme\x00", "email": "a@x.test"}), "NUL"),
    (envelope("billing.tenant.provisioned", {"name": "Ac\nme", "email": "a@x.test"}), "data.name: .*control"),
    (envelope("billing.tenant.provisioned", {"name": "A\x7f", "email": "a@x.test"}), "data.name: .*control"),
    (envelope("billing.tenant.provisioned", {"name": "A\x85", "email": "a@x.test"}), "data.name: .*control"),
    (envelope("billing.tenant.provisioned", {"name": "A\ud800", "email": "a@x.test"}), "surrogate"),
    (envelope("billing.tenant.provisioned", {"name": "A", "email": "a\x1b@x.test"}), "data.email"),
    (envelope("billing.tenant.updated", {"address": {"line1": "Main St\t1"}}), "address.line1"),
    (envelope("billing.usage.recorded", {"meter": "api\x01", "quantity": 1}), "data.meter"),
    (envelope(data={"plan": "pro\r"}), "data.plan"),
    (envelope(id="cmd\x00"), "NUL"),
    (envelope(id="cmd\x1f"), "id: .*control"),
    # other code points that are not printable: unassigned, zero-width, bidi override, NBSP, line separator
    (envelope(id="cmd\u0be0"), "id: .*non-printable"),
    (envelope("billing.tenant.provisioned", {"name": "Ac\u200bme", "email": "a@x.test"}), "data.name: .*non-printable"),
    (envelope("billing.tenant.provisioned", {"name": "Acme\u202e", "email": "a@x.test"}), "data.name: .*non-printable"),
    (envelope(data={"plan": "pro\u00a0"}), "data.plan: .*non-printable"),
    (envelope(source="app\u2028"), "source: .*non-printable"),
    (envelope(source="app\n"), "source: .*control"),
    (envelope(data={"seats": 1, "ignored": ["\x00"]}), "NUL"),
    (envelope(data={"seats": 1, "ignored\udfff": 1}), "surrogate"),
    (envelope(data={"seats": 1, "deep": _nested(20)}), "nested deeper"),
])
def test_invalid_commands_say_what_is_wrong(bad, where):
    with pytest.raises(InvalidMessage, match=where):
        parse_command(bad)


def test_readable_ids_of_invalid_envelopes():
    assert readable_ids(envelope(data={"seats": "many"})) == ("cmd-1", "t1", "billing.subscription.change")
    assert readable_ids(envelope(subject=..., data=["x"])) == ("cmd-1", None, "billing.subscription.change")
    assert readable_ids({"id": 5, "type": "x" * 500}) == (None, None, None)
    assert readable_ids("garbage") == (None, None, None)


@pytest.mark.parametrize("id, subject, type", [
    ("cmd\x00x", "t\x00", "billing.tenant.deleted\x00"),
    ("cmd\ud800", "t\ud800", "billing.\ud800"),
    ("cmd\n1", "t 1", "billing tenant"),
    ("x" * 201, "t" * 129, "b" * 129),
    ("", "", ""),
    (7, 7, False),  # found by tests/unit/test_command_fuzz.py: `False` came back as the type
])
def test_readable_ids_keep_only_what_a_valid_command_could_hold(id, subject, type):
    """Unreadable ids become null in the failure event instead of poisoning it (or the ledger)."""
    assert readable_ids({"id": id, "subject": subject, "type": type, "data": {"tenant_id": subject}}) == (
        None, None, None)


def test_largest_values_that_fit_are_valid():
    usage = parse_command(envelope("billing.usage.recorded", {"meter": "api_calls", "quantity": MAX_QUANTITY,
                                                               "timestamp": "2026-11-02T12:00:00Z"})).data
    assert usage.quantity == 10**15 - 1
    assert parse_command(envelope(data={"seats": 100_000})).data.seats == 100_000
    name = "Ä" * 256  # non-ASCII text is fine
    assert parse_command(envelope("billing.tenant.provisioned", {"name": name, "email": "a@x.test"})).data.name == name
    assert parse_command(envelope(data={"seats": 1, "deep": _nested(12)})).data.seats == 1


DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize("body, why", [
    (DEEP, "nested deeper"),
    (b'{"a": ' + DEEP + b"}", "nested deeper"),
    (b"\x00" * 64, "not JSON"),
    (b'{"id": "a\x00b"}', "not JSON"),  # a raw NUL inside a string is a control character
    (json.dumps({"id": "x"}).encode("utf-16"), "not UTF-8"),
    (b"\x80\x04\x95pickle", "not UTF-8"),
    (b'{"a": "\xed\xa0\x80"}', "not UTF-8"),  # a surrogate encoded as UTF-8 bytes
    (b'{"quantity": NaN}', "NaN is not JSON"),
    (b'{"quantity": -Infinity}', "Infinity is not JSON"),
    (b'{"quantity": 1e999}', "out of range"),
    (b'{"quantity": ' + b"9" * 5000 + b"}", "not JSON"),
    (b"{not json", "not JSON"),
    (b"", "not JSON"),
    (b" " * (MAX_COMMAND_BYTES + 1), "over the limit"),
])
def test_bodies_that_are_not_json_commands(body, why):
    with pytest.raises(InvalidMessage, match=why):
        decode_envelope(body)


def test_a_body_decodes_to_its_json_value():
    assert decode_envelope(json.dumps(envelope()).encode()) == envelope()
    assert decode_envelope('{"name": "\u00c4"}') == {"name": "Ä"}
    assert decode_envelope(b"[1, 2.5]") == [1, 2.5]  # parse_command then says it is not an object


def test_provisioned_payment_method_is_optional():
    data = parse_command(envelope("billing.tenant.provisioned", {"name": "A", "email": "a@x.test"})).data
    assert isinstance(data, TenantProvisioned) and data.payment_method is None and data.plan is None
