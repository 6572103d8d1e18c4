"""List pages and `expand[]`, the same way for every resource.

Lists are newest first (by `created`, ties by creation order), with `limit` (1..100, default
10), `starting_after` / `ending_before` cursors, `has_more` and `url`. Expansion replaces an id
by its object along a dotted path; a python list on the path (a list object's `data`) fans out.
"""
from __future__ import annotations

import operator
from collections.abc import Callable

from .errors import invalid
from .forms import as_int, as_str_list
from .store import Store, newest_first, sort_key

PAGE_PARAMS = {"limit", "starting_after", "ending_before"}
COMPARISONS = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}


def range_params(name: str) -> set[str]:
    """`name=ts` or `name[gt|gte|lt|lte]=ts`, as a route declares it."""
    return {f"{name}[{op}]" for op in COMPARISONS}


CREATED = range_params("created")


def page(store: Store, objs, params: dict, url: str, kind: str | None = None) -> dict:
    def anchor(cursor_id, param: str) -> tuple:
        cursor = store.find(cursor_id) if isinstance(cursor_id, str) else None
        if cursor is None or (kind and cursor.get("object") != kind):
            raise invalid(f"No such object: '{cursor_id}'", param=param, code="resource_missing")
        return sort_key(cursor)

    data, has_more = window(newest_first(objs), params, sort_key, anchor)
    return {"object": "list", "data": [store.render(o) for o in data], "has_more": has_more, "url": url}


def window(ordered: list, params: dict, key, anchor) -> tuple[list, bool]:
    """One page of `ordered` (newest first by `key`) and whether more follow; `anchor(cursor_id,
    param)` gives a cursor's key or raises Stripe's error, so computed lists page like stored ones."""
    limit = as_int(params.get("limit", 10), "limit", minimum=1, maximum=100)
    after, before = params.get("starting_after"), params.get("ending_before")
    if after and before:
        raise invalid("You may only specify one of these parameters: ending_before, starting_after.",
                      param="ending_before")
    if after:
        point = anchor(after, "starting_after")
        rest = [o for o in ordered if key(o) < point]
        return rest[:limit], len(rest) > limit
    if before:
        point = anchor(before, "ending_before")
        rest = [o for o in ordered if key(o) > point]
        return rest[-limit:], len(rest) > limit
    return ordered[:limit], len(ordered) > limit


# Fields Stripe leaves out of an object unless `expand[]` asks for them ("includable"), by
# (object type, field): a function of the store and the object's public shape. The resources
# that own them register them (e.g. resources/payment_intents.py: an invoice's confirmation_secret).
INCLUDABLE: dict[tuple[str, str], Callable[[Store, dict], object]] = {}


def expand(store: Store, body: dict, params: dict) -> dict:
    for path in as_str_list(params.get("expand"), "expand"):
        segments = path.split(".")
        if len(segments) > 4:
            raise invalid(f"You cannot expand more than 4 levels of a property. Property: {path}",
                          param="expand")
        body = _expand(store, body, segments, path)
    return body


def _expand(store: Store, value, segments: list[str], path: str):
    if not segments or value is None:
        return value
    if isinstance(value, list):
        return [_expand(store, v, segments, path) for v in value]
    if not isinstance(value, dict):
        raise invalid(f"This property cannot be expanded ({path}).", param="expand")
    head, rest = segments[0], segments[1:]
    include = INCLUDABLE.get((str(value.get("object")), head))
    if head in value:
        child = value[head]
    elif include is not None:
        child = include(store, value)
    else:
        raise invalid(f"This property cannot be expanded ({head}).", param="expand")
    if isinstance(child, str):
        target = store.find(child)
        if target is None:
            raise invalid(f"This property cannot be expanded ({head}).", param="expand")
        child = _deleted_stub(target) if target.get("_deleted") else store.render(target)
    value = dict(value)
    value[head] = _expand(store, child, rest, path)
    return value


def _deleted_stub(obj: dict) -> dict:
    return {"id": obj["id"], "object": obj["object"], "deleted": True}


def created_filter(objs, params: dict, key: str = "created"):
    """`created=ts` or `created[gt|gte|lt|lte]=ts`."""
    spec = params.get(key)
    if spec is None:
        return objs
    if not isinstance(spec, dict):
        exact = as_int(spec, key)
        return [o for o in objs if o.get(key) == exact]
    bounds = []
    for op, raw in spec.items():
        if op not in COMPARISONS:   # routes declare range_params(key), so this is a safety net
            raise invalid(f"Received unknown parameter: {key}[{op}]", param=f"{key}[{op}]",
                          code="parameter_unknown")
        bounds.append((COMPARISONS[op], as_int(raw, f"{key}[{op}]")))
    return [o for o in objs if all(compare(o.get(key) or 0, bound) for compare, bound in bounds)]
