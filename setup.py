"""Which packages the wheel holds; everything else about the distribution is in pyproject.toml.

The repository root is the `billing_sync` package, so that the layout shows the architecture
(config/, models/, handlers/, workers/ at the top). setuptools cannot discover packages under a
root mapped to a name from pyproject.toml alone, so they are found here: every folder with an
`__init__.py` ships, and a new sub-package needs no list edited. Left out of the wheel: tests/,
bench/ and the repository's own scripts at the root (run.py, this file). `.ci/wheel_check.py`
builds the wheel and imports every module of the tree from it, so whatever this misses fails CI.

The Stripe emulator (folder emulator/) is its own top-level package, `billing_sync_emulator`: it
imports nothing from billing_sync, so it can later ship as a distribution of its own.
"""
from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

NOT_IN_BILLING_SYNC = ["tests", "tests.*", "bench", "bench.*", "emulator", "emulator.*"]
ROOT_SCRIPTS = {"run", "setup"}   # modules at the root that are tools of the repository


class BuildPyWithoutRootScripts(build_py):
    """Every .py file next to `__init__.py` is a module of its package; at the root, the
    repository's scripts are not."""

    def find_package_modules(self, package, package_dir):
        modules = super().find_package_modules(package, package_dir)
        if package == "billing_sync":
            modules = [(pkg, name, path) for pkg, name, path in modules if name not in ROOT_SCRIPTS]
        return modules


setup(
    package_dir={"billing_sync": ".", "billing_sync_emulator": "emulator"},
    packages=[
        "billing_sync",
        *(f"billing_sync.{name}" for name in find_packages(".", exclude=NOT_IN_BILLING_SYNC)),
        "billing_sync_emulator",
        *(f"billing_sync_emulator.{name}" for name in find_packages("emulator")),
    ],
    cmdclass={"build_py": BuildPyWithoutRootScripts},
)
