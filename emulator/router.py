"""Routes: (method, path pattern) → handler. Handlers are plain functions `handler(req, **ids)`
returning the response body (or `(status, body)`); resource modules register them at import.

Each route declares the parameters it accepts (`params`, bracket paths as in `forms.param_tree`;
`expand` always): anything else, at any depth, is answered 400 `parameter_unknown` before the
handler runs, as Stripe does. A route that declares nothing accepts only `expand`."""
from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .forms import check_known, param_tree

ROUTES: list[tuple[str, re.Pattern, Callable]] = []


def route(method: str, pattern: str, params: Iterable[str] = ()):
    regex = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "$")
    accepted = param_tree(params)

    def register(fn):
        @functools.wraps(fn)
        def checked(req: Request, **ids):
            check_known(req.params, accepted)
            return fn(req, **ids)

        ROUTES.append((method, regex, checked))
        return fn

    return register


def match(method: str, path: str):
    """The handler and path ids, or (None, allowed?) when nothing matches."""
    best = None
    for m, regex, fn in ROUTES:
        found = regex.match(path)
        # A literal segment beats a placeholder: /v1/customers/search is not a customer id.
        if found and m == method and (best is None or len(found.groupdict()) < len(best[1])):
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
