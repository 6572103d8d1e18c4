"""The package's modules import each other without a cycle.

A cycle (a imports b, b imports a, directly or through others) makes import order matter and
hides which layer depends on which; the usual patch, an import inside a function or a PEP 562
module `__getattr__`, only hides it further. grimp builds the graph from the source, counting
imports inside functions and under `TYPE_CHECKING` too, so those patches do not pass here.
"""
from __future__ import annotations

import grimp


def test_no_module_of_the_package_is_part_of_an_import_cycle():
    graph = grimp.build_graph("billing_sync", cache_dir=None)
    cycles = set()
    for importer in graph.modules:
        for imported in graph.find_modules_directly_imported_by(importer):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back is not None:
                cycles.add(" -> ".join((importer, *back)))
    assert not cycles, "import cycles:\n" + "\n".join(sorted(cycles))


def test_the_graph_holds_imports_made_inside_functions():
    """`cli/roles.py` imports its sub-commands' modules inside the commands: those edges count too."""
    graph = grimp.build_graph("billing_sync", cache_dir=None)
    assert graph.direct_import_exists(importer="billing_sync.cli.roles", imported="billing_sync.workers.scheduler")
