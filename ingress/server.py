"""`billing-sync ingress`: the ingress and read API on uvicorn, enqueueing on the shared broker.

Slow clients. The ingress faces the internet, and a client that opens connections and then sends
its request slowly (slow-loris), or sends fewer body bytes than its `Content-Length` says, would
hold each connection open for ever: uvicorn arms its keep-alive timeout only *between* requests
and has no deadline for a request's headers. So:

- every connection must deliver a request's complete headers within `header_timeout_s` of being
  opened (or of its previous response), in at most `max_header_bytes`; otherwise it is closed;
- the webhook route reads its body within `ingress.bodies.BODY_TIMEOUT_S` (else 408);
- idle keep-alive connections close after `keep_alive_s` (uvicorn's own timeout);
- at most `max_connections` connections are served at once: past that uvicorn answers 503
  (Stripe retries), and slow connections free their places within `header_timeout_s`.

The deadline is a mixin over uvicorn's HTTP protocol classes (httptools when installed, else h11,
as uvicorn's "auto" chooses). Caveat: it uses uvicorn's `cycle`, `loop` and `transport` attributes
and `on_response_complete` hook, which are not public API; tests/ingress/test_slow_clients.py
runs each parser against real sockets and fails if an upgrade changes them.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

import structlog
import uvicorn

from ..config.settings import get_settings

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class HttpLimits:
    header_timeout_s: float = 10.0
    max_header_bytes: int = 64 * 1024
    keep_alive_s: int = 5
    max_connections: int = 1000


class _HeaderDeadline:
    """Closes a connection that has not delivered a request's headers in time or in size.

    Armed when the connection opens and again after each response; disarmed when a new request
    cycle starts, which the parser does (synchronously, inside `data_received`) once the headers
    are complete.
    """

    limits: HttpLimits = HttpLimits()

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._deadline = None
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._deadline is None:
            return
        if self.cycle is not self._waiting_after:  # a new request's headers are complete
            self._disarm()
            return
        self._header_bytes += len(data)
        if self._header_bytes > self.limits.max_header_bytes:
            self._close("headers too large")

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
            self._arm()  # no pipelined request started: wait for the next one's headers

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._waiting_after = self.cycle
        self._header_bytes = 0
        self._deadline = self.loop.call_later(self.limits.header_timeout_s, self._close, "headers too slow")

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _close(self, why: str) -> None:
        self._disarm()
        if not self.transport.is_closing():
            log.info("ingress.connection_closed", reason=why)
            self.transport.close()


def _protocol_class(http: str, limits: HttpLimits) -> type:
    if http == "auto":
        try:
            import httptools  # noqa: F401

            http = "httptools"
        except ImportError:
            http = "h11"
    if http == "httptools":
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as base
    else:
        from uvicorn.protocols.http.h11_impl import H11Protocol as base
    return type(f"Deadline{base.__name__}", (_HeaderDeadline, base), {"limits": limits})


def uvicorn_config(app, host: str, port: int, *, log_level: str = "info", limits: HttpLimits = HttpLimits(),
                   http: str = "auto", **options) -> uvicorn.Config:
    """The uvicorn configuration of every ingress (`billing-sync ingress` and `up`): the slow-client
    limits above, no lifespan, uvicorn's loggers through ours (`log_config=None`)."""
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="off", log_config=None,
                          http=_protocol_class(http, limits), limit_concurrency=limits.max_connections,
                          timeout_keep_alive=limits.keep_alive_s, h11_max_incomplete_event_size=limits.max_header_bytes,
                          **options)


def serve(host: str, port: int) -> None:
    settings = get_settings()
    if settings.embedded_broker:
        # An in-process broker would hold accepted webhooks where no worker can reach them.
        sys.exit(
            "billing-sync ingress needs a shared broker: set BILLING_BROKER_URL to redis://… or amqp://…\n"
            "(with the embedded broker, run `billing-sync up`, which serves the ingress in-process)"
        )
    from ..bootstrap import bootstrap
    from ..workers.broker import make_broker
    from .app import create_app

    app = create_app(bootstrap(settings), broker=make_broker(settings))
    # uvicorn's access log prints method and path only; our own lines carry event id and outcome.
    config = uvicorn_config(app, host, port, log_level=settings.log_level.lower(), access_log=False,
                            proxy_headers=True)
    uvicorn.Server(config).run()
