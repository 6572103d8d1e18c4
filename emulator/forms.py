"""Decode Stripe's form encoding (what the SDK sends for v1) into nested Python values.

The SDK flattens `{"items": [{"price": "p"}], "expand": ["x"]}` into `items[0][price]=p` and
`expand[0]=x` (older clients send `expand[]=x`). We rebuild the nesting, turning dicts whose keys
are all indices into lists, and leave every leaf a string: each endpoint coerces what it reads,
so the errors name the parameter the way Stripe's do.
"""
from __future__ import annotations

import json
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
    return {name: _listify(value) for name, value in root.items()}   # the top level stays a hash


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


def as_hash_list(value, param: str) -> list[dict]:
    """An array of hashes (`marketing_features[0][name]=…`); an empty string unsets it."""
    if value in (None, ""):
        return []
    if not isinstance(value, list):
        raise invalid("Invalid array", param=param)
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise invalid("Invalid hash", param=f"{param}[{i}]")
    return value


def non_empty_str(value, param: str) -> str:
    """A required string that cannot be unset (Stripe's `parameter_invalid_empty` for "")."""
    if value is None:
        raise invalid(f"Missing required param: {param}.", param=param, code="parameter_missing")
    if not isinstance(value, str):
        raise invalid(f"Invalid string: {json.dumps(value)}", param=param)
    if value == "":
        raise invalid(f"You passed an empty string for '{param}'. We assume empty values are an attempt to unset a "
                      f"parameter; however '{param}' cannot be unset. You should remove '{param}' from your "
                      "request or supply a non-empty value.", param=param, code="parameter_invalid_empty")
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


def param_tree(paths) -> dict:
    """The parameters an endpoint accepts, from Stripe's bracket notation: `{"customer",
    "items[price]", "items[quantity]", "metadata"}` → `{"customer": None, "items": {"price": None,
    "quantity": None}, "metadata": None}`. None: anything may follow (a scalar, a list of strings,
    a free-form hash like metadata); a hash's keys apply to each element of a list too (`items[0]`)."""
    tree: dict = {"expand": None}
    for path in paths:
        parts = [a or b for a, b in _KEY.findall(path)]
        node = tree
        for part in parts[:-1]:
            if node.get(part) is None:
                node[part] = {}
            node = node[part]
        node.setdefault(parts[-1], None)
    return tree


def unknown_param(value, tree: dict | None, name: str = "") -> str | None:
    """The first parameter in `value` that `tree` does not declare, named the way Stripe names
    it (`items[0][quantty]`), or None."""
    if tree is None:
        return None
    if isinstance(value, list):
        children = ((f"{name}[{i}]", v) for i, v in enumerate(value))
        return next((found for child, v in children if (found := unknown_param(v, tree, child))), None)
    if isinstance(value, dict):
        for key, v in value.items():
            child = f"{name}[{key}]" if name else key
            if key not in tree:
                return child
            if found := unknown_param(v, tree[key], child):
                return found
    return None   # a scalar where a hash is declared: the endpoint's coercion reports it


def check_known(params: dict, allowed) -> None:
    """Stripe rejects a parameter it does not know, at any depth; so do we, so typos fail here
    first. `allowed` is a `param_tree` or the paths to build one from."""
    tree = allowed if isinstance(allowed, dict) else param_tree(allowed)
    name = unknown_param(params, tree)
    if name is not None:
        raise invalid(f"Received unknown parameter: {name}", param=name, code="parameter_unknown")


def require(params: dict, *names: str) -> None:
    for name in names:
        if params.get(name) in (None, ""):
            raise invalid(f"Missing required param: {name}.", param=name, code="parameter_missing")
