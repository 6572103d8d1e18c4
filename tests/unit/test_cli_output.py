"""The CLI's output for scripts and people (cli/output.py): `--json` is one JSON document on
stdout, before or after the command's name; tables are aligned; progress bars only on a terminal;
`-h`, `--help` and `--version` everywhere."""
from __future__ import annotations

import io
import json

import click
import pytest
from click.testing import CliRunner

from billing_sync.cli import main, output
from billing_sync.config.settings import get_settings


@pytest.fixture
def run(monkeypatch, tmp_path):
    """Invoke `billing-sync ARGS` on embedded defaults with a database of its own; stderr apart."""
    monkeypatch.chdir(tmp_path)  # no .env of the developer's
    monkeypatch.setenv("BILLING_DATABASE_URL", f"sqlite:///{tmp_path}/billing.db")
    monkeypatch.setenv("BILLING_LOG_FORMAT", "json")

    def invoke(args: list[str], **env: str):
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        try:
            return CliRunner().invoke(main, args)
        finally:
            get_settings.cache_clear()

    return invoke


def every_command(group: click.Group = main, path: tuple[str, ...] = ()):
    yield path
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from every_command(command, (*path, name))
        else:
            yield (*path, name)


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_every_group_and_command_answers_help(run, flag):
    for path in every_command():
        result = run([*path, flag])
        assert result.exit_code == 0, (path, result.output, result.stderr)
        assert "Usage:" in result.output, path


def test_version(run):
    from importlib.metadata import version

    result = run(["--version"])
    assert result.exit_code == 0 and result.output.strip().endswith(version("billing-sync"))


@pytest.mark.parametrize("args", [["status", "--json"], ["--json", "status"]])
def test_status_json_is_one_document_on_stdout(run, args):
    run(["db", "upgrade"])
    result = run(args)
    document = json.loads(result.stdout)  # the whole of stdout: one document, nothing else
    assert result.exit_code == 1  # embedded defaults: the broker and Stripe are not checked from here
    assert document["ok"] is False and document["summary"].startswith("NOT CHECKED")
    states = {check["name"]: check["state"] for check in document["checks"]}
    assert states["database"] == "ok" and states["broker"] == "skip" and states["catalog"] == "ok"


def test_a_table_is_aligned_and_whole_in_a_pipe(capsys):
    output.table([{"id": 1, "reason": "internal_error", "note": "x" * 150}, {"id": 1234, "reason": "invalid"}],
                 ["id", "reason", "note"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "REASON", "NOTE"]
    words = ["REASON", "internal_error", "invalid"]
    assert len({line.index(word) for line, word in zip(lines, words, strict=True)}) == 1
    assert "x" * 150 in lines[1]  # not folded at 80 columns
    assert lines[2].split() == ["1234", "invalid", "-"]


def test_no_progress_bar_in_a_pipe_or_with_json(monkeypatch):
    monkeypatch.setattr("sys.stderr", io.StringIO())
    with output.progress("sweep", total=3) as ticker:
        ticker.advance()
    assert output.Ticker.__name__ and not output.progress_shown()


def test_a_progress_bar_on_a_terminal_counts_and_rates(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    err = Terminal()
    monkeypatch.setattr("sys.stderr", err)
    with output.progress("sweep", total=4) as ticker:
        ticker.advance(4)
    drawn = err.getvalue()
    assert "sweep" in drawn and "4/4" in drawn and "/s" in drawn

    @click.command()
    @output.json_option
    def quiet() -> None:
        assert not output.progress_shown()

    assert CliRunner().invoke(quiet, ["--json"]).exit_code == 0


def test_db_current_and_history(run):
    assert run(["db", "current"]).exit_code == 1  # no schema yet
    upgraded = json.loads(run(["db", "upgrade", "--json"]).stdout)
    current = json.loads(run(["--json", "db", "current"]).stdout)
    assert current == {"current": upgraded["head"], "head": upgraded["head"], "at_head": True}
    history = json.loads(run(["db", "history", "--json"]).stdout)["migrations"]
    assert history[0]["revision"] == upgraded["head"] and history[0]["current"] and history[-1]["down_revision"] is None
    table = run(["db", "history"]).stdout.splitlines()
    assert table[0].split()[:3] == ["REVISION", "DOWN_REVISION", "MARK"] and "current" in table[1]


def test_config_check_masks_every_secret_and_says_where_each_value_came_from(run):
    run(["db", "upgrade"])
    secrets = {"BILLING_STRIPE_API_KEY": "sk_test_s3cr3tkey", "BILLING_WEBHOOK_SECRETS": "whsec_s3cr3t1,whsec_s3cr3t2",
               "BILLING_API_TOKENS": "tok-s3cr3t", "BILLING_BROWSER_TOKEN_SECRET": "hmac-s3cr3t-of-32-bytes-at-least",
               "BILLING_REDIS_URL": "redis://:s3cr3tpw@127.0.0.1:1/0",
               "BILLING_STRIPE_API_BASE": "http://127.0.0.1:1"}  # nothing listens: Stripe is down, fast
    result = run(["config", "check", "--json"], **secrets)
    assert "s3cr3t" not in result.stdout + result.stderr
    document = json.loads(result.stdout)
    values = {row["setting"]: (row["value"], row["source"]) for row in document["configuration"]}
    assert values["BILLING_STRIPE_API_KEY"] == ("sk_test_****", "environment")
    assert values["BILLING_WEBHOOK_SECRETS"] == (["whsec_****", "whsec_****"], "environment")
    assert values["BILLING_API_TOKENS"] == (["****"], "environment")
    assert values["BILLING_BROWSER_TOKEN_SECRET"] == ("****", "environment")
    assert values["BILLING_SWEEP_INTERVAL_S"] == (600, "default")
    states = {check["name"]: check["state"] for check in document["checks"]}
    assert states["catalog"] == "ok" and states["database"] == "ok" and states["stripe"] == "fail"
    assert document["exit_code"] == result.exit_code == 1  # an outage
    human = run(["config", "check"], **secrets)
    assert "s3cr3t" not in human.stdout and "BILLING_STRIPE_API_KEY" in human.stdout
