"""The product services' client depends on the contract, not on billing-sync's insides: what it
imports from billing_sync is `contract/` only (the command types and their validation, the bus's
names and envelope in `contract/bus_names.py`, the error it raises), so a product service that
installs it drags in no configuration, database or worker code."""
from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import billing_sync

ALLOWED = ("billing_sync.contract",)


def _imported_modules(path: Path, package: str) -> set[str]:
    """The modules a module at the top of `package` imports (`from .a import b` names `a.b`
    when that is a module, else `a`)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = f"{package}.{node.module}" if node.level else node.module
            base = base if node.module else package
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if base.startswith(package) and _is_module(candidate) else base)
    return found


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # `name` is an attribute of a module, not a module
        return False


def test_the_client_imports_only_the_contract():
    client = Path(billing_sync.__file__).parent / "client.py"
    ours = {name for name in _imported_modules(client, "billing_sync") if name.startswith("billing_sync")}
    assert "billing_sync.contract.commands" in ours
    assert all(name.startswith(ALLOWED) for name in ours), sorted(ours)
