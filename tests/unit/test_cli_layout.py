"""The `billing-sync` command's layout: one module per command group under cli/, each listing its
commands in `COMMANDS`, all registered on `main`. A new module or command that is not registered
would be silently unreachable from the command line; this test names it."""
from __future__ import annotations

import importlib
import pkgutil

import click

from billing_sync import cli

HELPERS = {"errors", "options", "output"}  # modules of the package that hold no commands


def command_modules():
    for info in pkgutil.iter_modules(cli.__path__):
        if info.name not in HELPERS:
            yield info.name, importlib.import_module(f"{cli.__name__}.{info.name}")


def test_every_command_module_is_a_registered_group():
    for name, module in command_modules():
        assert module in cli.GROUPS, f"cli/{name}.py is not in cli.GROUPS"
        assert getattr(module, "COMMANDS", ()), f"cli/{name}.py lists no COMMANDS"


def test_every_top_level_command_of_a_module_is_listed_and_registered():
    for name, module in command_modules():
        defined = [value for value in vars(module).values() if isinstance(value, click.Command)]
        nested = {sub for value in defined if isinstance(value, click.Group) for sub in value.commands.values()}
        for command in defined:
            if command in nested:
                continue
            assert command in module.COMMANDS, f"cli/{name}.py: {command.name!r} is not in COMMANDS"
            assert cli.main.commands.get(command.name) is command, f"{command.name!r} is not registered on main"
