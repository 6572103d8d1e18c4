"""Operator tools sit on top: `cli/` (the command line) may import `ops/` (status, dead-letter tools,
jobs run now), nothing else in the package imports either, and `ops/` never imports the command
line. A role that needs something an operator tool has (the relay once imported `status` for its
URL redaction) takes it from a lower layer (`config/urls.py`), so running a role never drags in
the operator code."""
from __future__ import annotations

import grimp


def importers_of(graph, package: str) -> set[str]:
    found = set()
    for module in graph.find_descendants(package) | {package}:
        found |= graph.find_modules_that_directly_import(module)
    return found


def test_only_the_command_line_imports_the_operator_tools():
    graph = grimp.build_graph("billing_sync", cache_dir=None)
    outside = {m for m in importers_of(graph, "billing_sync.ops")
               if not m.startswith(("billing_sync.cli", "billing_sync.ops"))}
    assert not outside, f"modules outside cli/ and ops/ import ops/: {sorted(outside)}"


def test_nothing_imports_the_command_line():
    graph = grimp.build_graph("billing_sync", cache_dir=None)
    outside = {m for m in importers_of(graph, "billing_sync.cli") if not m.startswith("billing_sync.cli")}
    assert not outside, f"modules outside cli/ import it: {sorted(outside)}"
