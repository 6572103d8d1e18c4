"""Strict JSON, as every edge reads it: UTF-8 (no BOM, no UTF-16/32 guessing), no `NaN` or
`Infinity` (nor numbers that overflow to them), nesting that Python's parser can read.

`json.loads(bytes)` would guess UTF-16 and UTF-32 from the first bytes and accept `NaN`; a body
that only that leniency can read is refused here, at the ingress and at the bridge alike.
"""
from __future__ import annotations

import json


class NotStrictJSON(ValueError):
    """Why a body is not strict JSON; the message names the problem, never the content."""


def loads(raw: bytes) -> object:
    """The JSON value of `raw`, or `NotStrictJSON`. Raises nothing else."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NotStrictJSON(f"body is not UTF-8 (byte {exc.start})") from None
    if text.startswith("\ufeff"):
        raise NotStrictJSON("body starts with a byte-order mark")
    try:
        return json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except RecursionError:  # nesting deeper than the interpreter's stack
        raise NotStrictJSON("JSON nested deeper than the decoder can read") from None
    except ValueError as exc:  # JSONDecodeError, NaN/Infinity, ints over Python's digit limit
        raise NotStrictJSON(f"not JSON: {exc}") from None


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text[:20]} is out of range")
    return value
