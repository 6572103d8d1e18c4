"""The key scheme of the commands' Stripe writes: what makes a retried command repeat, not redo.

Every Stripe write of a command carries the idempotency key `"{command id}:{step}"`, and its
parameters depend only on the command and on Stripe state that the step itself does not change,
so a retried step repeats the same request and Stripe replays the first answer (keys last 24 h).
A write whose parameters depend on a decision on Stripe's state has the decision in its key too
(the gateway appends a digest of the request), so deciding again sends a new request. (Usage
goes to Stripe by minute window, not by command: handlers/metering.py.)

Changing this scheme changes the keys of commands in flight across a deploy: they would be
applied twice.
"""
from __future__ import annotations

from typing import Any

from ..contract.commands import Command


def step_key(cmd: Command[Any], step: str) -> str:
    """The idempotency key of one Stripe write of one command. (A write whose parameters come
    from a decision on Stripe's state, `change_plan`, gets a digest of its request appended by
    the gateway: deciding again after the state moved sends a new request.)"""
    return f"{cmd.id}:{step}"
