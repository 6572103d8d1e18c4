"""Options several role commands share: where to listen, and where to serve /metrics."""
from __future__ import annotations

import click

from ..config.settings import get_settings


def network_options(default_port: int):
    """`--host` (127.0.0.1) and `--port` (`default_port`)."""
    def decorate(fn):
        fn = click.option("--port", default=default_port, show_default=True, type=int)(fn)
        return click.option("--host", default="127.0.0.1", show_default=True)(fn)

    return decorate


def metrics_options(fn):
    """`--metrics-host` and `--metrics-port`; unset, they fall back to the settings."""
    fn = click.option("--metrics-host", default=None,
                      help="Address for --metrics-port.  [default: BILLING_METRICS_HOST or 0.0.0.0]")(fn)
    return click.option("--metrics-port", default=None, type=int,
                        help="Serve Prometheus /metrics on this port.  [default: BILLING_METRICS_PORT or off]")(fn)


def metrics_address(port: int | None, host: str | None) -> tuple[int | None, str]:
    """The options, else the settings: (port or None when off, host)."""
    settings = get_settings()
    return (port if port is not None else settings.metrics_port), (host or settings.metrics_host)


def serve_metrics(port: int | None, host: str | None) -> None:
    """Start this process's /metrics server, if a port is set, before the role's loop."""
    port, host = metrics_address(port, host)
    if port is None:
        return
    from ..config.metrics_http import serve_this_process
    from ..workers.readiness import role_readiness

    try:
        serve_this_process(port, host, role_readiness(get_settings()))
    except OSError as exc:
        raise click.ClickException(f"cannot serve metrics on {host}:{port}: {exc}") from exc


class Since(click.ParamType):
    """`--since`: an ISO-8601 time (UTC when it has no zone) or an age such as `30m`, `2h`, `7d`."""

    name = "since"
    UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

    def convert(self, value, param, ctx):
        from datetime import UTC, datetime, timedelta

        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        if text[-1:] in self.UNITS and text[:-1].isascii() and text[:-1].isdigit():
            return datetime.now(UTC) - timedelta(seconds=int(text[:-1]) * self.UNITS[text[-1]])
        try:
            at = datetime.fromisoformat(text)
        except ValueError:
            self.fail(f"{text[:40]!r} is neither an ISO-8601 time nor an age such as 30m, 2h, 7d", param, ctx)
        return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
