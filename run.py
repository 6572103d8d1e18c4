#!/usr/bin/env python3
"""Set up a local virtualenv (once, and again when pyproject.toml or setup.py changes), then run.

    python3 run.py demo        # billing-sync demo on embedded defaults
    python3 run.py test [...]  # the test suite (extra args go to pytest)
    python3 run.py lint        # ruff's checks (configured in pyproject.toml)
    python3 run.py types       # mypy (configured in pyproject.toml)
    python3 run.py lock        # requirements.lock (the Docker image's pins) from pyproject.toml
    python3 run.py <any billing-sync sub-command>

Only Python 3.11+ is needed on the machine; everything else comes from pyproject.toml.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".installed"


def _wanted_stamp() -> str:
    """Changes when the install would: the distribution (pyproject.toml) or its package list (setup.py)."""
    return hashlib.sha256(b"".join((ROOT / name).read_bytes() for name in ("pyproject.toml", "setup.py"))).hexdigest()


def ensure_venv() -> None:
    if STAMP.exists() and STAMP.read_text() == _wanted_stamp():
        return
    if not (BIN / "python").exists():
        print("run.py: creating .venv", file=sys.stderr)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("run.py: installing billing-sync and its dependencies into .venv", file=sys.stderr)
    pip = [str(BIN / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "-e", f"{ROOT}[test]"], check=True)
    STAMP.write_text(_wanted_stamp())


def typecheck(args: list[str]) -> int:
    """mypy over both packages. The repository root is the package `billing_sync` but its folder
    has another name, and mypy cannot see packages through setuptools' editable-install finder, so
    mypy runs in a folder of links named after the packages; its report names files from the root."""
    links = VENV / "mypy_path"
    links.mkdir(exist_ok=True)
    for package, target in (("billing_sync", ROOT), ("billing_sync_emulator", ROOT / "emulator")):
        link = links / package
        if not link.is_symlink() or link.resolve() != target:
            link.unlink(missing_ok=True)
            link.symlink_to(target, target_is_directory=True)
    cmd = [str(BIN / "mypy"), "--config-file", str(ROOT / "pyproject.toml"), *args]
    run = subprocess.run(cmd, cwd=links, stdout=subprocess.PIPE, text=True)
    for line in run.stdout.splitlines():
        for package, folder in (("billing_sync_emulator/", "emulator/"), ("billing_sync/", "")):
            if line.startswith(package):
                line = folder + line[len(package):]
                break
        print(line)
    return run.returncode


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    ensure_venv()
    os.chdir(ROOT)
    if argv[0] == "types":
        return typecheck(argv[1:])
    if argv[0] == "test":
        cmd = [str(BIN / "python"), "-m", "pytest", *argv[1:]]
    elif argv[0] == "lint":
        cmd = [str(BIN / "ruff"), "check", *argv[1:]]
    elif argv[0] == "lock":  # every runtime dependency pinned with its hashes, for Linux / Python 3.11
        cmd = [str(BIN / "uv"), "pip", "compile", "pyproject.toml", "--python-version", "3.11",
               "--generate-hashes", "--no-header", "-q", "-o", "requirements.lock", *argv[1:]]
    else:
        cmd = [str(BIN / "billing-sync"), *argv]
    return subprocess.call(cmd)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
