"""`dlq list | replay | purge`: dead-lettered messages (`ops/dead_letters.py`)."""
from __future__ import annotations

import sys

import click


@click.group()
def dlq() -> None:
    """Dead-lettered messages: list, replay, purge."""


@dlq.command("list")
@click.option("--limit", default=50, show_default=True)
def dlq_list(limit: int) -> None:
    from ..ops.dead_letters import list_dead_letters

    list_dead_letters(limit=limit)


@dlq.command("replay")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "replay_all", is_flag=True)
def dlq_replay(ids: tuple[int, ...], replay_all: bool) -> None:
    from ..ops.dead_letters import replay

    sys.exit(replay(ids=list(ids), replay_all=replay_all))


@dlq.command("purge")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "purge_all", is_flag=True)
def dlq_purge(ids: tuple[int, ...], purge_all: bool) -> None:
    from ..ops.dead_letters import purge

    sys.exit(purge(ids=list(ids), purge_all=purge_all))


COMMANDS = (dlq,)
