"""How every command prints its results: one JSON document for scripts, aligned tables for people,
and a progress bar for long runs (all three drawn by `rich`).

`--json` is accepted both before the command (`billing-sync --json status`) and after it
(`billing-sync status --json`); with it a command prints exactly one JSON document on stdout
and nothing else there (logs and progress go to stderr). Without it, results are tables on
stdout. A progress bar is drawn on stderr, and only when stderr is a terminal and `--json` is
off, so a script or a pipe never sees one.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

JSON_WANTED = "billing_sync.json"  # key in the root context's `meta`
NOT_A_TERMINAL_WIDTH = 1000  # a pipe gets whole lines, not a table folded at 80 columns


def _want_json(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.find_root().meta[JSON_WANTED] = True
    return value


json_option = click.option(
    "--json", "as_json", is_flag=True, expose_value=False, callback=_want_json,
    help="Print one JSON document on stdout (logs and progress stay on stderr).")


def wants_json() -> bool:
    """Whether `--json` was given, before or after the command's name."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.find_root().meta.get(JSON_WANTED))


def console(err: bool = False) -> Console:
    """A console on the current stdout (or stderr): no colours or markup taken from the data."""
    stream = sys.stderr if err else sys.stdout
    terminal = stream.isatty()
    return Console(file=stream, markup=False, highlight=False, emoji=False,
                   width=None if terminal else NOT_A_TERMINAL_WIDTH, no_color=not terminal)


def emit(document: Any, human: Callable[[], None] | None = None) -> None:
    """With `--json`: `document` as one JSON document on stdout. Otherwise `human()` prints it
    for people (by default the document as a table of its fields)."""
    if wants_json():
        click.echo(json.dumps(document, default=str, sort_keys=True))
    elif human is not None:
        human()
    else:
        fields(document)


def _cell(value: Any) -> Text:
    if value is None:
        return Text("-")
    if isinstance(value, list | tuple | set):
        return Text(", ".join(map(str, value)) or "-")
    if isinstance(value, dict):
        return Text(json.dumps(value, default=str, sort_keys=True))
    return Text(str(value))


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], *, headers: Sequence[str] | None = None,
          empty: str | None = None) -> None:
    """`rows` as an aligned table of `columns` (headers: the column names upper-cased)."""
    if not rows and empty is not None:
        click.echo(empty)
        return
    grid = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for header in headers or [column.upper() for column in columns]:
        grid.add_column(header, overflow="fold")
    for row in rows:
        grid.add_row(*(_cell(row.get(column)) for column in columns))
    console().print(grid)


def fields(document: Mapping[str, Any]) -> None:
    """A mapping as two aligned columns, key and value, keys sorted."""
    grid = Table(box=None, pad_edge=False, show_edge=False, show_header=False)
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    for key in sorted(document):
        grid.add_row(Text(str(key)), _cell(document[key]))
    console().print(grid)


class RateColumn(ProgressColumn):
    """Items per second (rich's own speed columns count bytes)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("-/s" if speed is None else f"{speed:.1f}/s")


class Ticker:
    """What a long run reports its progress to: `total(n)` once it knows, `advance(n)` per item.
    A no-op when no bar is drawn, so callers need not check."""

    def __init__(self, bar: Progress | None = None, task: Any = None):
        self._bar, self._task = bar, task

    def total(self, total: int | None) -> None:
        if self._bar is not None:
            self._bar.update(self._task, total=total)

    def advance(self, count: int = 1) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, count)


def progress_shown() -> bool:
    return not wants_json() and sys.stderr.isatty()


@contextmanager
def progress(description: str, total: int | None = None) -> Iterator[Ticker]:
    """A progress bar on stderr (counts, rate, elapsed time) for the `with` block, or a silent
    `Ticker` with `--json` or when stderr is not a terminal."""
    if not progress_shown():
        yield Ticker()
        return
    bar = _bar()
    with bar:
        yield Ticker(bar, bar.add_task(description, total=total))


def _bar() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
                    TimeElapsedColumn(), console=console(err=True), transient=False)


Report = Callable[[str, int, int | None], None]  # handlers.dependencies.Progress: (stage, done, total)


@contextmanager
def progress_stages() -> Iterator[Report]:
    """For a job that reports its progress itself (`progress(stage, done, total)`, e.g. the sweep:
    customers listed, then tenants reconciled): one bar per stage on stderr, or nothing with
    `--json` or when stderr is not a terminal."""
    if not progress_shown():
        yield lambda stage, done, total: None
        return
    bar = _bar()
    tasks: dict[str, Any] = {}

    def report(stage: str, done: int, total: int | None) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=total)
        bar.update(tasks[stage], completed=done, total=total)

    with bar:
        yield report
