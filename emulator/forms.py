"""Decode Stripe's form encoding (what the SDK sends for v1) into nested Python values.

The SDK flattens `{"items": [{"price": "p"}], "expand": ["x"]}` into `items[0][price]=p` and
`expand[0]=x` (older clients send `expand[]=x`). We rebuild the nesting, turning dicts whose keys
are all indices into lists, and leave every leaf a string: each endpoint coerces what it reads,
so the errors name the parameter the way Stripe's do.
"""
from __future__ import annotations

import re
from urllib.parse import parse_qsl

from .errors import invalid

_KEY = re.compile(r"([^\[\]]+)|\[([^\[\]]*)\]")


def decode(text: str) -> dict:
    root: dict = {}
    for key, value in parse_qsl(text, keep_blank_values=True):
        parts = [a or b for a, b in _KEY.findall(key)]
        if not parts:
            continue
        node = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part == "":  # `name[]`: append
                part = str(len(node))
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    raise invalid(f"Invalid array or hash for parameter {key}", param=key)
    return _listify(root)


def _listify(value):
    if isinstance(value, dict):
        value = {k: _listify(v) for k, v in value.items()}
        if value and all(k.isdigit() for k in value):
            return [value[k] for k in sorted(value, key=int)]
    return value


# -- coercion, with Stripe's error messages -------------------------------------------------

def as_int(value, param: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise invalid(f"Invalid integer: {value}", param=param) from None
    if minimum is not None and number < minimum:
        raise invalid(f"This value must be greater than or equal to {minimum}.", param=param)
    if maximum is not None and number > maximum:
        raise invalid(f"This value must be less than or equal to {maximum}.", param=param)
    return number


def as_bool(value, param: str) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "True", "1"):
        return True
    if value in ("false", "False", "0"):
        return False
    raise invalid(f"Invalid boolean: {value}", param=param)


def as_str_list(value, param: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise invalid(f"Invalid array for parameter {param}", param=param)


def as_dict(value, param: str) -> dict:
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise invalid(f"Invalid object for parameter {param}", param=param)
    return value


def nullable(value):
    """Stripe unsets a scalar field sent as an empty string."""
    return None if value == "" else value


def merge_metadata(current: dict, update) -> dict:
    """metadata[k]=v sets, metadata[k]= deletes, metadata= clears: Stripe's rules."""
    if update == "":
        return {}
    update = as_dict(update, "metadata")
    merged = dict(current)
    for key, value in update.items():
        if not isinstance(value, str):
            raise invalid(f"Invalid value for metadata[{key}]", param=f"metadata[{key}]")
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def check_known(params: dict, allowed: set[str]) -> None:
    """Stripe rejects a parameter it does not know; so do we, so typos fail here first."""
    for key in params:
        if key not in allowed and key != "expand":
            raise invalid(f"Received unknown parameter: {key}", param=key, code="parameter_unknown")


def require(params: dict, *names: str) -> None:
    for name in names:
        if params.get(name) in (None, ""):
            raise invalid(f"Missing required param: {name}.", param=name, code="parameter_missing")
