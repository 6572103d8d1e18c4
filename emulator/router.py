"""Routes: (method, path pattern) → handler. Handlers are plain functions `handler(req, **ids)`
returning the response body (or `(status, body)`); resource modules register them at import."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

ROUTES: list[tuple[str, re.Pattern, Callable]] = []


def route(method: str, pattern: str):
    regex = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "$")

    def register(fn):
        ROUTES.append((method, regex, fn))
        return fn

    return register


def match(method: str, path: str):
    """The handler and path ids, or (None, allowed?) when nothing matches."""
    best = None
    for m, regex, fn in ROUTES:
        found = regex.match(path)
        if found and m == method:
            # A literal segment beats a placeholder: /v1/customers/search is not a customer id.
            if best is None or len(found.groupdict()) < len(best[1]):
                best = (fn, found.groupdict())
    return best or (None, {})


@dataclass
class Request:
    store: Any
    method: str
    path: str
    params: dict
    idempotency_key: str | None = None
    request_id: str | None = None
    emulator: Any = None           # the EmulatorServer (webhook endpoints, faults, clocks)
    extra: dict = field(default_factory=dict)
