"""The message bus: routing by message type, dependencies injected by parameter name, and the
bus a broker's actors run on (built once, lazily, or installed)."""
from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest

from billing_sync.handlers.messagebus import Bus, MissingDependency
from billing_sync.workers.actors import BusSlot


@dataclass(frozen=True)
class Ping:
    text: str


@dataclass(frozen=True)
class Pong:
    text: str


def on_ping(message: Ping, *, now, greeting) -> str:
    return f"{greeting} {message.text} at {now()}"


def on_pong(message: Pong) -> str:
    return message.text.upper()


def test_each_message_goes_to_its_type_handler_with_the_dependencies_it_names():
    bus = Bus({Ping: on_ping, Pong: on_pong}, {"now": lambda: 12, "greeting": "hello", "unused": object()})
    assert bus.handle(Ping("you")) == "hello you at 12"
    assert bus.handle(Pong("quiet")) == "QUIET"  # asks for nothing, gets nothing


def test_a_message_nobody_handles_is_an_error_not_silence():
    with pytest.raises(TypeError, match="no handler for Pong"):
        Bus({Ping: on_ping}, {"now": lambda: 0, "greeting": "hi"}).handle(Pong("x"))


def test_a_missing_dependency_fails_when_the_bus_is_built():
    with pytest.raises(MissingDependency, match="on_ping needs greeting"):
        Bus({Ping: on_ping}, {"now": lambda: 0})


def test_call_injects_a_function_that_is_not_routed_and_takes_the_callers_arguments():
    def report(tenant_id: str, *, dry_run: bool, greeting: str) -> str:
        return f"{greeting} {tenant_id} dry={dry_run}"

    bus = Bus({}, {"greeting": "hi", "dry_run": "never injected over the caller's"})
    assert bus.call(report, "t1", dry_run=True) == "hi t1 dry=True"


def test_routing_tables_are_injected_and_handed_to_their_dispatcher():
    def dispatch(message: Ping, *, handlers) -> str:
        return handlers[message.text](message)

    def shout(message: Ping, *, greeting) -> str:
        return greeting.upper()

    bus = Bus({Ping: dispatch}, {"greeting": "hey"}, tables={"handlers": {"loud": shout}})
    assert bus.handle(Ping("loud")) == "HEY"


def test_replace_swaps_a_dependency_and_keeps_the_rest():
    bus = Bus({Ping: on_ping}, {"now": lambda: 1, "greeting": "hello"})
    other = bus.replace(greeting="bye")
    assert other.handle(Ping("x")) == "bye x at 1"
    assert bus.handle(Ping("x")) == "hello x at 1"


def test_a_brokers_bus_is_built_once_on_first_use_with_the_brokers_sender():
    built = []
    sent = []

    def build(send_command):
        built.append(send_command)
        return Bus({}, {"send_command": send_command})

    slot = BusSlot(build, sent.append)
    assert built == []  # nothing before the first message (a worker process forks first)
    buses = []
    threads = [threading.Thread(target=lambda: buses.append(slot.get())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(built) == 1 and all(bus is buses[0] for bus in buses)
    buses[0].dependencies["send_command"]({"id": "cmd-1"})
    assert sent == [{"id": "cmd-1"}]


def test_an_installed_bus_sends_commands_to_the_brokers_actor():
    sent = []
    slot = BusSlot(lambda send: pytest.fail("an installed bus is not built"), sent.append)
    slot.install(Bus({}, {"send_command": lambda envelope: pytest.fail("the test's own sender")}))
    slot.get().dependencies["send_command"]({"id": "cmd-2"})
    assert sent == [{"id": "cmd-2"}]
