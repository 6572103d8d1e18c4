"""Fuzzing the command decoder: whatever bytes or JSON arrive on `billing.commands`, decoding and
validation end in a `Command` or in `InvalidMessage`, never in another exception, and what a
failure event would say about an invalid message is always storable. Bounded (a few thousand
examples, well under a minute); slow suite."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing_sync.contract.commands import COMMAND_TYPES, Command, decode_envelope, parse_command, readable_ids
from billing_sync.errors import InvalidMessage
from billing_sync.models.text import is_storable
from billing_sync.workers.bridge import read_command

pytestmark = pytest.mark.slow
FUZZ = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text with what hurts: control characters, NUL, lone surrogates, non-ASCII, long runs.
nasty_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec=None, categories=None), max_size=20),  # lone surrogates included
    st.sampled_from(["", " ", "\x00", "\ud800", "a\nb", "\x85", "t1", "cmd-1", "x" * 300, "1" * 5000]),
)
scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-10**40, max_value=10**40),
                    st.floats(allow_nan=True, allow_infinity=True), nasty_text)
json_values = st.recursive(scalars, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(nasty_text, children, max_size=4)), max_leaves=20)

VALID_DATA = {
    "billing.tenant.provisioned": {"name": "Acme", "email": "a@x.test", "plan": "pro", "seats": 2, "trial_days": 14},
    "billing.tenant.updated": {"name": "Acme", "address": {"city": "Berlin", "country": "DE"}},
    "billing.subscription.change": {"plan": "pro", "seats": 3},
    "billing.subscription.cancel": {"at_period_end": False},
    "billing.subscription.resume": {},
    "billing.tenant.deleted": {},
    "billing.usage.recorded": {"meter": "api_calls", "quantity": 5, "timestamp": 1_790_000_000},
}


@st.composite
def mutated_commands(draw) -> dict:
    """A valid command of some type, with a few attributes or data fields replaced or added."""
    type = draw(st.sampled_from(sorted(COMMAND_TYPES)))
    envelope = {"specversion": "1.0", "id": "cmd-1", "source": "app", "type": type, "subject": "t1",
                "time": "2026-11-02T12:00:00Z", "data": dict(VALID_DATA[type])}
    for _ in range(draw(st.integers(0, 3))):
        where = draw(st.sampled_from(["envelope", "data"]))
        target = envelope["data"] if where == "data" and isinstance(envelope["data"], dict) else envelope
        key = draw(st.one_of(st.sampled_from(sorted(target) or ["x"]), nasty_text))
        target[key] = draw(json_values)
    return envelope


def decode_and_parse(body: bytes | str) -> Command | None:
    """A Command, or None when the body was refused with InvalidMessage; anything else raises."""
    try:
        return parse_command(decode_envelope(body))
    except InvalidMessage as exc:
        assert str(exc)
        return None


def assert_readable_ids_are_safe(envelope: object) -> None:
    for value in readable_ids(envelope):
        assert value is None or (is_storable(value) and 0 < len(value) <= 200 and value.isprintable())


@FUZZ
@given(st.binary(max_size=2000))
def test_any_bytes_decode_or_are_invalid(body):
    decode_and_parse(body)


@FUZZ
@given(json_values)
def test_any_json_decodes_or_is_invalid(value):
    body = json.dumps(value)  # NaN, Infinity and lone surrogates included, as a careless publisher would send them
    decode_and_parse(body.encode("utf-8", "surrogatepass"))
    try:
        decoded = decode_envelope(body.encode("utf-8", "surrogatepass"))
    except InvalidMessage:
        return
    assert_readable_ids_are_safe(decoded)


@FUZZ
@given(mutated_commands())
def test_mutated_commands_are_valid_commands_or_invalid(envelope):
    assert_readable_ids_are_safe(envelope)
    try:
        cmd = parse_command(envelope)
    except InvalidMessage:
        return
    # What passes is safe to store and to send to Stripe.
    assert is_storable(cmd.id) and is_storable(cmd.tenant_id) and cmd.type in COMMAND_TYPES
    for value in cmd.data.model_dump().values():
        if isinstance(value, str):
            assert value.isprintable()
        if isinstance(value, int) and not isinstance(value, bool):
            assert 0 < value < 10**15


@FUZZ
@given(body=st.one_of(st.binary(max_size=500), mutated_commands().map(lambda e: json.dumps(e).encode("utf-8",
                                                                                                     "surrogatepass"))),
       headers=st.one_of(st.none(), st.dictionaries(st.sampled_from(["compression", "x"]), scalars, max_size=2)),
       content_type=st.one_of(st.none(), st.sampled_from(["application/json", "application/cloudevents+json",
                                                          "application/x-python-serialize", "text/plain; x=1"]),
                              nasty_text))
def test_the_bridge_reads_any_message_without_raising(body, headers, content_type):
    message = SimpleNamespace(body=body, headers=headers, content_type=content_type)
    envelope, cmd, text, problem = read_command(message)
    assert is_storable(text.replace("\x00", ""))  # no lone surrogates; NULs are dropped by db_text when stored
    if problem is None:
        assert parse_command(envelope) == cmd  # what the bridge passes on is a valid command
        assert not (headers or {}).get("compression")
    else:
        assert_readable_ids_are_safe(envelope)
