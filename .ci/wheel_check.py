#!/usr/bin/env python3
"""The wheel holds the whole package: build it, install it into a clean virtualenv and import,
from there, every module of the source tree (billing_sync and billing_sync_emulator).

Editable installs (what the tests run on) see the source tree itself, so a sub-package the wheel
leaves out still passes every test and is missing only from the wheel and the Docker image; this
check is the one that notices. It also fails when a data file of a sub-package (catalog.yaml,
fixtures.json, ...) is missing, or when tests/, bench/ or run.py ship.

    python3 .ci/wheel_check.py      # run by .ci/run before the tests; exit 1 names what is wrong
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOT_SOURCE = (".venv", ".git", ".ci", ".pytest_cache", "build", "var", "__pycache__", "*.egg-info", "*.pyc")
NOT_SHIPPED_DIRS = {"tests", "bench"}   # top-level folders of the repository that are not the package
ROOT_SCRIPTS = {"run.py", "setup.py"}
ALEMBIC_SCRIPTS = {"models/migrations/env.py"}   # loaded by Alembic from its path, not importable
EMULATOR_DIR = "emulator"                         # installed as the top-level package below
EMULATOR_PACKAGE = "billing_sync_emulator"


def installed_path(rel: Path) -> Path:
    """Where a file of the source tree lands in site-packages."""
    if rel.parts[0] == EMULATOR_DIR:
        return Path(EMULATOR_PACKAGE, *rel.parts[1:])
    return Path("billing_sync", *rel.parts)


def module_name(rel: Path) -> str:
    parts = list(installed_path(rel).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_files(src: Path) -> tuple[list[Path], list[Path]]:
    """(modules, data files of sub-packages) of the package tree, relative to the root."""
    modules, data = [], []
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        rel = path.relative_to(src)
        if rel.parts[0] in NOT_SHIPPED_DIRS or rel.parts[0].startswith("."):
            continue
        if len(rel.parts) == 1:   # the root: its modules, but not the repository's files and scripts
            if rel.suffix == ".py" and rel.name not in ROOT_SCRIPTS:
                modules.append(rel)
        elif (path.parent / "__init__.py").exists() or rel.suffix == ".py":
            (modules if rel.suffix == ".py" else data).append(rel)
    return modules, data


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="wheel-check-") as tmp_name:
        tmp = Path(tmp_name)
        # A copy, so stale build/ output of the working tree cannot slip into the wheel.
        src = tmp / "src"
        shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(*NOT_SOURCE))
        modules, data = source_files(src)   # before the build adds its own files to the copy
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "--disable-pip-version-check",
                        "-w", str(tmp / "dist"), str(src)], check=True)
        wheel = next((tmp / "dist").glob("*.whl"))
        venv.EnvBuilder(with_pip=True).create(tmp / "venv")
        python = tmp / "venv" / "bin" / "python"
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)],
                       check=True)

        site = Path(subprocess.run([str(python), "-c", "import billing_sync, os; print(os.path.dirname("
                                    "os.path.dirname(billing_sync.__file__)))"],
                                   check=True, capture_output=True, text=True, cwd=tmp).stdout.strip())
        problems = [f"not in the wheel: {rel}" for rel in (*modules, *data)
                    if not (site / installed_path(rel)).is_file()]
        problems += [f"in the wheel but not the package's: {name}" for name in
                     (*(f"billing_sync/{d}" for d in NOT_SHIPPED_DIRS), *(f"billing_sync/{s}" for s in ROOT_SCRIPTS))
                     if (site / name).exists()]
        importable = [module_name(rel) for rel in modules if rel.as_posix() not in ALEMBIC_SCRIPTS]
        # From a directory outside the source tree, so every import is served by the wheel.
        script = ("import importlib, sys\n"
                  "failed = 0\n"
                  "for name in sys.argv[1:]:\n"
                  "    try:\n"
                  "        importlib.import_module(name)\n"
                  "    except Exception as exc:\n"
                  "        failed += 1\n"
                  "        print(f'cannot import {name}: {type(exc).__name__}: {exc}')\n"
                  "sys.exit(1 if failed else 0)\n")
        imported = subprocess.run([str(python), "-c", script, *importable], capture_output=True, text=True, cwd=tmp)
        problems += imported.stdout.splitlines() + ([imported.stderr.strip()] if imported.returncode not in (0, 1)
                                                     else [])
        for problem in problems:
            print(f"wheel check: {problem}", file=sys.stderr)
        if problems:
            return 1
        print(f"wheel check: {wheel.name} holds and imports all {len(importable)} modules "
              f"and {len(data)} data files")
        return 0


if __name__ == "__main__":
    sys.exit(main())
