"""The message bus: routes each message to its handler by the message's type, with the handler's
dependencies injected by the names of its parameters (cosmicpython's `inject_dependencies`).

`bootstrap.bootstrap()` builds a `Bus` from explicit dependencies (handlers/dependencies.py: a
unit-of-work factory, the Stripe port, the catalog, the clock, the settings, the command
sender). A handler declares what it needs as keyword-only parameters named after them, e.g.

    def reconcile_requested(message: ReconcileRequested, *, uow_factory, gateway, catalog, now) -> dict

and the bus passes exactly those: a handler reaches nothing it did not ask for, and a test builds
a bus with fakes instead of patching modules. Entry points (actors, the bridge, the scheduler,
the CLI) only translate what they received into a message and call `bus.handle(message)`, or
`bus.call(function, …)` for a handler run that is not a message (an operator's reconcile).
"""
from __future__ import annotations

import functools
import inspect
from datetime import datetime
from typing import Any, Callable, Iterable, Mapping, cast

from sqlalchemy import Engine

from ..bms.port import BillingGateway
from ..config.catalog import Catalog
from ..config.settings import Settings
from .dependencies import UowFactory

Handler = Callable[..., Any]


class MissingDependency(TypeError):
    """A handler asks for a dependency the bus does not have (a typo, or a bus built without it)."""


def inject_dependencies(handler: Handler, dependencies: Mapping[str, Any], given: Iterable[str] = ()) -> Handler:
    """`handler` with the dependencies it names bound; the message (and any other per-call
    argument) stays positional. Dependencies are keyword-only parameters; one without a default
    that neither a dependency nor the caller (`given`) fills fails here, when the bus is built,
    not on a message."""
    params = inspect.signature(handler).parameters
    wanted = [name for name, p in params.items() if p.kind is p.KEYWORD_ONLY and name not in given]
    missing = [name for name in wanted if name not in dependencies and params[name].default is params[name].empty]
    if missing:
        raise MissingDependency(f"{handler.__module__}.{handler.__qualname__} needs {', '.join(missing)}")
    return functools.partial(handler, **{name: dependencies[name] for name in wanted if name in dependencies})


class Bus:
    """Routes messages to injected handlers. Thread-safe: it holds no per-message state (each
    handler opens its own units of work), so a worker's threads share one bus.

    `tables` are routing tables that a handler routes through itself (`{dependency name: {key:
    handler}}`, e.g. the command handlers by command type): each of their handlers is injected
    too, and the injected table is a dependency under that name.
    """

    def __init__(self, routes: Mapping[type, Handler], dependencies: Mapping[str, Any], *,
                 tables: Mapping[str, Mapping[Any, Handler]] | None = None, engine: Engine | None = None):
        self._routes = dict(routes)
        self._tables = dict(tables or {})
        self._given = dict(dependencies)
        deps = dict(dependencies)
        for name, table in self._tables.items():
            deps[name] = {key: inject_dependencies(handler, dependencies) for key, handler in table.items()}
        self.dependencies: Mapping[str, Any] = deps
        self.engine = engine
        self._handlers = {kind: inject_dependencies(handler, deps) for kind, handler in self._routes.items()}

    def handle(self, message: object) -> Any:
        """Run the handler of `message`'s type; returns what it returns (the outcome)."""
        handler = self._handlers.get(type(message))
        if handler is None:
            raise TypeError(f"no handler for {type(message).__name__}")
        return handler(message)

    def call(self, function: Handler, *args: Any, **kwargs: Any) -> Any:
        """Run a handler function that is not routed by message type (an operator's run, a
        scheduler job) with its dependencies injected the same way."""
        return inject_dependencies(function, self.dependencies, given=kwargs)(*args, **kwargs)

    def replace(self, **dependencies: Any) -> Bus:
        """This bus with some dependencies replaced (e.g. the command sender of the broker it is
        installed on); the engine and the routes are shared."""
        return Bus(self._routes, {**self._given, **dependencies}, tables=self._tables, engine=self.engine)

    def with_routes(self, routes: Mapping[type, Handler]) -> Bus:
        """This bus with some message types routed to other handlers (a test's stand-ins); the
        dependencies are shared."""
        return Bus({**self._routes, **routes}, self._given, tables=self._tables, engine=self.engine)

    # The dependencies that entry points use themselves (a role's settings, a read outside any
    # handler), typed.
    @property
    def uow_factory(self) -> UowFactory:
        return cast(UowFactory, self.dependencies["uow_factory"])

    @property
    def gateway(self) -> BillingGateway:
        return cast(BillingGateway, self.dependencies["gateway"])

    @property
    def catalog(self) -> Catalog:
        return cast(Catalog, self.dependencies["catalog"])

    @property
    def settings(self) -> Settings:
        return cast(Settings, self.dependencies["settings"])

    def now(self) -> datetime:
        return cast(datetime, self.dependencies["now"]())
