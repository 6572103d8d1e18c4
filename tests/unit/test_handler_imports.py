"""Handlers know neither the broker nor the Stripe SDK: no module under handlers/ imports `stripe`,
`dramatiq`, `kombu` or the Stripe adapter (bms/gateway.py, bms/requests.py), directly or through
what it imports. They speak to Stripe through the `BillingGateway` port (bms/port.py)."""
from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import billing_sync.handlers

FORBIDDEN = ("stripe", "dramatiq", "kombu", "billing_sync.bms.gateway", "billing_sync.bms.requests")
HANDLERS = Path(billing_sync.handlers.__file__).parent
MODULES = sorted(f"billing_sync.handlers.{m.name}" for m in pkgutil.iter_modules([str(HANDLERS)]))


def _is_forbidden(name: str) -> bool:
    return any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN)


def imported_names(module: str) -> set[str]:
    """Every module an `import` statement of `module` names (anywhere in it, function bodies too),
    relative imports resolved; `from package import name` also counts `package.name`."""
    path = HANDLERS / (module.rsplit(".", 1)[1] + ".py")
    package = module.rsplit(".", 1)[0].split(".")
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else [])) \
                if node.level else node.module
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def test_the_check_sees_every_kind_of_import():
    assert "billing_sync.bms.port.SubscriptionView" in imported_names("billing_sync.handlers.subscription_commands")
    assert "billing_sync.errors" in imported_names("billing_sync.handlers.commands")
    assert _is_forbidden("stripe.error") and _is_forbidden("billing_sync.bms.gateway.NotFound")
    assert not _is_forbidden("stripe_state") and not _is_forbidden("billing_sync.bms.port")


@pytest.mark.parametrize("module", MODULES)
def test_handler_module_imports_no_broker_and_no_stripe_adapter(module):
    assert sorted(filter(_is_forbidden, imported_names(module))) == []


def test_importing_every_handler_module_loads_no_broker_and_no_stripe_adapter():
    """The transitive check: a fresh interpreter imports all of handlers/ and lists what it loaded."""
    code = ("import importlib, json, sys\n"
            f"for name in {MODULES!r}: importlib.import_module(name)\n"
            "print(json.dumps(sorted(sys.modules)))")
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                       text=True, timeout=120).stdout)
    assert "billing_sync.handlers.commands" in loaded
    assert sorted(filter(_is_forbidden, loaded)) == []
