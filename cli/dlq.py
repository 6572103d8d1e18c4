"""`dlq list | show | replay | purge`: dead-lettered messages (`ops/dead_letters.py`)."""
from __future__ import annotations

import sys

import click

from ..errors import SafetyRefusal
from .options import Since
from .output import emit, fields, json_option, table


@click.group()
def dlq() -> None:
    """Dead-lettered messages: list, show, replay, purge."""


@dlq.command("list")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--reason", default=None, help="Only this failure reason (invalid, bms_unavailable, …).")
@click.option("--source", default=None, help="Only this source (an actor such as apply_command, or bridge).")
@click.option("--since", type=Since(), default=None, help="Only those failed at or after (ISO-8601, or 2h, 7d).")
@json_option
def dlq_list(limit: int, reason: str | None, source: str | None, since) -> None:
    """The newest dead letters."""
    from ..ops.dead_letters import dead_letter_rows

    rows = dead_letter_rows(limit, reason=reason, source=source, since=since)
    emit({"dead_letters": rows}, lambda: table(
        [{**row, "replayed": "yes" if row["replayed_at"] else "no", "detail": (row["detail"] or "")[:80]}
         for row in rows], ["id", "failed_at", "source", "message_id", "reason", "replayed", "detail"],
        headers=["ID", "FAILED AT (UTC)", "SOURCE", "MESSAGE", "REASON", "REPLAYED", "DETAIL"],
        empty="no dead letters"))


@dlq.command("show")
@click.argument("dead_id", metavar="ID", type=int)
@json_option
def dlq_show(dead_id: int) -> None:
    """One dead letter: where it came from, why it failed, and the message as kept for replay."""
    import json

    from ..ops.dead_letters import dead_letter

    document = dead_letter(dead_id)
    if document is None:
        emit({"id": dead_id, "error": "no such dead letter"}, lambda: click.echo(f"{dead_id}: no such dead letter"))
        sys.exit(1)

    def human() -> None:
        fields({key: value for key, value in document.items() if key != "body"})
        body = document["body"]
        click.echo("\nbody:")
        click.echo(json.dumps(body, indent=2, sort_keys=True) if not isinstance(body, str) else body)

    emit(document, human)


@dlq.command("replay")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "replay_all", is_flag=True)
def dlq_replay(ids: tuple[int, ...], replay_all: bool) -> None:
    from ..ops.dead_letters import replay

    sys.exit(replay(ids=list(ids), replay_all=replay_all))


@dlq.command("purge")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "purge_all", is_flag=True, help="Every dead letter (asks first).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before --all.")
def dlq_purge(ids: tuple[int, ...], purge_all: bool, yes: bool) -> None:
    from ..ops.dead_letters import dead_letter_counts, purge

    if purge_all and not yes:  # a declined (or unanswerable: no terminal) confirmation is a refusal, exit 3
        total, waiting = dead_letter_counts()
        try:
            confirmed = click.confirm(f"Delete all {total} dead letter(s), {waiting} of them never replayed?",
                                      default=False, err=True)
        except click.Abort:
            confirmed = False
        if not confirmed:
            raise SafetyRefusal("dlq purge --all was not confirmed; nothing purged (--yes purges without asking)")
    sys.exit(purge(ids=list(ids), purge_all=purge_all))


COMMANDS = (dlq,)
