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
