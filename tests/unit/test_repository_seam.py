"""Outside models/, the service reaches the database through the unit of work's repositories
(`uow.tenants`, `uow.inbox`, `uow.ledger`, …), never through its SQLAlchemy session: a query
written in a handler or a worker is a second place where a table's rules (locks, order,
upserts) would have to be kept right. Tests may read `uow.session` to check what was stored."""

from __future__ import annotations

import ast
from pathlib import Path

import billing_sync

ROOT = Path(billing_sync.__file__).parent
OUTSIDE_THE_SERVICE = {"tests", "emulator", "bench", "models", ".venv"}


def _service_modules() -> list[Path]:
    return sorted(path for path in ROOT.rglob("*.py") if not OUTSIDE_THE_SERVICE & set(path.relative_to(ROOT).parts))


def session_uses(source: str) -> list[int]:
    """Lines that read `.session` of anything, or import SQLAlchemy's ORM or query builders."""
    query_builders = {"select", "update", "delete", "insert", "func"}
    lines = []
    for node in ast.walk(ast.parse(source)):
        reads_session = isinstance(node, ast.Attribute) and node.attr == "session"
        imports_orm = isinstance(node, ast.ImportFrom) and (
            node.module in {"sqlalchemy.orm", "sqlalchemy.sql"}
            or (node.module == "sqlalchemy" and any(alias.name in query_builders for alias in node.names))
        )
        if reads_session or imports_orm:
            lines.append(node.lineno)
    return sorted(lines)


def test_the_check_sees_a_session_and_a_query_builder():
    assert session_uses("def f(uow):\n    return uow.session.get(X, 1)\n") == [2]
    assert session_uses("from sqlalchemy import select, text\n") == [1]
    assert session_uses("from sqlalchemy.orm import aliased\n") == [1]
    assert session_uses("from sqlalchemy import text\nuow.tenants.lock('t')\n") == []


def test_no_service_module_outside_models_uses_the_session():
    offenders = {
        str(path.relative_to(ROOT)): found for path in _service_modules() if (found := session_uses(path.read_text()))
    }
    assert offenders == {}
