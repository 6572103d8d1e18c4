"""docs/architecture.md cannot drift silently: every file it names exists, every `file.py:name`
it names is defined in that file, and the layer order it states is the package's import graph
(grimp, imports inside functions included). The README's architecture section is held to the
same paths and links the document."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import grimp
import pytest

import billing_sync

ROOT = Path(billing_sync.__file__).parent  # the repository root is the package
DOC = ROOT / "docs" / "architecture.md"
README = ROOT / "README.md"

# A backticked path: folders end with "/", files with an extension; `file.py:name` names a
# function or class in it (dotted for a method). Globs and URLs are not paths of the tree.
PATH = re.compile(r"`((?:[A-Za-z0-9_.-]+/)*[A-Za-z0-9_.-]+(?:/|\.(?:py|md|yaml|json)))(?::([A-Za-z_][\w.]*))?`")

# The doc's "Layers" table, highest first: a module may import from its own layer and the ones
# below it, never from one above. The emulator is a package of its own (tested elsewhere).
LAYERS = [
    "billing_sync.cli",
    "billing_sync.demo",
    grimp.Layer("billing_sync.fleet", "billing_sync.client", independent=False),
    grimp.Layer("billing_sync.ingress", "billing_sync.ops", independent=False),
    "billing_sync.workers",
    "billing_sync.bootstrap",
    "billing_sync.handlers",
    "billing_sync.bms",
    grimp.Layer("billing_sync.models", "billing_sync.config", "billing_sync.contract", independent=False),
    "billing_sync.errors",
]


def named_paths(text: str) -> list[tuple[str, str | None]]:
    return [(m.group(1), m.group(2)) for m in PATH.finditer(text)]


def defined_names(path: Path) -> set[str]:
    """Top-level functions and classes, and `Class.method` for their methods."""
    names: set[str] = set()
    for node in ast.parse(path.read_text(), str(path)).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        if isinstance(node, ast.ClassDef):
            names.update(f"{node.name}.{item.name}" for item in node.body
                         if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)))
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


# A table row that starts with a folder (`| `handlers/` | …`) may name that folder's files bare.
ROW_FOLDER = re.compile(r"\|\s*`((?:[A-Za-z0-9_.-]+/)+)`")


def resolve(path: str, line: str) -> Path:
    """`path` from the root; a bare file name also from the folder its table row is about."""
    row = ROW_FOLDER.match(line)
    if "/" not in path and row is not None and (ROOT / row.group(1) / path).exists():
        return ROOT / row.group(1) / path
    return ROOT / path


def missing(text: str) -> list[str]:
    problems = []
    for line in text.splitlines():
        for path, name in named_paths(line):
            target = resolve(path, line)
            if not target.exists() or (path.endswith("/") and not target.is_dir()):
                problems.append(f"{path}: no such file or folder")
            elif name is not None and name not in defined_names(target):
                problems.append(f"{path}:{name}: not defined there")
    return problems


def readme_architecture_section() -> str:
    text = README.read_text()
    start = text.index("## Architecture")
    return text[start:text.index("\n## ", start + 1)]


def test_the_check_finds_paths_and_names_and_fails_on_a_wrong_one():
    found = named_paths("see `workers/bridge.py:Bridge.process`, `handlers/` and `a/gone.py`, not `*.json`")
    assert found == [("workers/bridge.py", "Bridge.process"), ("handlers/", None), ("a/gone.py", None)]
    assert missing("`workers/bridge.py:Bridge.process` `handlers/`") == []
    assert missing("`handlers/gone.py` `workers/bridge.py:nothing_here` `errors.py/`") == [
        "handlers/gone.py: no such file or folder", "workers/bridge.py:nothing_here: not defined there",
        "errors.py/: no such file or folder"]
    # In a row about a folder, a bare name is that folder's file (or the root's); elsewhere the root's.
    assert missing("| `tests/unit/` | `test_architecture_doc.py:resolve`, `bootstrap.py` |") == []
    assert missing("| `tests/unit/` | `relay.py` |\n`test_architecture_doc.py`") == [
        "relay.py: no such file or folder", "test_architecture_doc.py: no such file or folder"]


def test_every_path_and_name_in_the_architecture_doc_exists():
    paths = named_paths(DOC.read_text())
    assert len(paths) > 50  # the hops really are named by file
    assert missing(DOC.read_text()) == []


def test_the_readme_architecture_section_names_real_files_and_links_the_doc():
    section = readme_architecture_section()
    assert "docs/architecture.md" in section
    assert len(named_paths(section)) > 10
    assert missing(section) == []


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph("billing_sync", cache_dir=None)


def test_no_layer_imports_a_layer_above_it(graph):
    illegal = sorted(graph.find_illegal_dependencies_for_layers(layers=LAYERS), key=lambda d: (d.importer, d.imported))
    assert not illegal, "imports against the layers of docs/architecture.md:\n" + "\n".join(
        f"{d.importer} imports {d.imported}" for d in illegal)


def test_the_layer_check_would_see_an_upward_import(graph):
    graph.add_import(importer="billing_sync.models.ledger", imported="billing_sync.handlers.registry")
    illegal = graph.find_illegal_dependencies_for_layers(layers=LAYERS)
    assert {(d.importer, d.imported) for d in illegal} == {("billing_sync.models", "billing_sync.handlers")}
