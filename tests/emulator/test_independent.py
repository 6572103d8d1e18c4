"""The emulator is a product of its own: standard library only, importing nothing from billing-sync,
so it could ship as its own distribution (as stripe-mock ships apart from stripe-python)."""
from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import billing_sync_emulator

PACKAGE = Path(billing_sync_emulator.__path__[0])


def _imports(path: Path) -> list[tuple[str, int, int]]:
    """(top-level module name or '' for a relative import, relative level, line) of every import."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name.split(".")[0], 0, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append(((node.module or "").split(".")[0] if node.level == 0 else "", node.level,
                          node.lineno))
    return found


def test_every_import_is_stdlib_or_inside_the_package():
    sources = sorted(PACKAGE.rglob("*.py"))
    assert len(sources) > 20, sources   # the scan sees the whole package
    offending = []
    for path in sources:
        depth = len(path.relative_to(PACKAGE).parts) - 1   # 0 for modules at the package's top
        for name, level, line in _imports(path):
            outside = level > depth + 1 if level else name not in sys.stdlib_module_names
            if outside:
                offending.append(f"{path.relative_to(PACKAGE)}:{line} {'.' * level}{name}")
    assert offending == []


def test_every_module_imports_and_serves_with_billing_sync_blocked():
    """Also catches dynamic imports the scan cannot see: importing billing_sync (or any
    third-party package) fails in this interpreter."""
    script = textwrap.dedent("""
        import importlib, importlib.abc, pkgutil, sys, urllib.request

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                top = name.split(".")[0]
                if top != "billing_sync_emulator" and top not in sys.stdlib_module_names:
                    raise ImportError(f"the emulator imported {name}")
                return None

        sys.meta_path.insert(0, Block())
        import billing_sync_emulator
        names = [m.name for m in pkgutil.walk_packages(billing_sync_emulator.__path__, "billing_sync_emulator.")]
        for name in names:
            importlib.import_module(name)
        from billing_sync_emulator.server import EmulatorServer
        with EmulatorServer() as server:
            assert urllib.request.urlopen(server.url + "/_emulator/health").status == 200
        print(len(names))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 20
