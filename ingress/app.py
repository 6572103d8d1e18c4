"""The webhook ingress: verify, enqueue, answer. Nothing else happens in the request.

`POST /webhooks/stripe`
- 413 when the body exceeds `webhook_max_bytes` (read in chunks; we stop at the limit);
- 408 when the body has not all arrived within `BODY_TIMEOUT_S` (a slow or lying client;
  ingress/server.py bounds the time for headers);
- 400 when the `Stripe-Signature` is missing, malformed, stale or matches no configured
  secret, or when the signed body is not strict JSON or not a Stripe event the handlers can use
  (`contract/stripe_event.py`: ids, type, `data.object` and its references, nesting depth);
- 200 `{"received": true}` once the broker has taken `{"event", "received_at"}` for the
  `process_stripe_event` actor (Redis: the write returned; RabbitMQ: the publisher confirm);
  a duplicate delivery is enqueued again and also gets 200 — the worker's ledger makes it a
  no-op;
- 503 when the broker refused or did not answer within `ENQUEUE_TIMEOUT_S`, so that Stripe
  retries (it does for three days). Never a 2xx without a durable enqueue.

`GET /healthz` (the process is up), `GET /readyz` (database and broker reachable: 200 or 503
with a JSON body per check), `GET /metrics` (Prometheus). The read API (`ingress/read_api.py`)
is mounted on the same app, and so is the entitlement stream
(`ingress/stream_api.py`). Webhooks are logged by event id, type and outcome only.
"""
from __future__ import annotations

import time
from typing import Callable

import anyio
import structlog
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..config import metrics
from ..contract import stripe_event
from ..handlers.messagebus import Bus
from .admin_api import routes as admin_api_routes
from .billing_api import routes as billing_api_routes
from .bodies import BODY_TIMEOUT_S, TooLarge, read_limited
from .plans_api import routes as plans_api_routes
from .read_api import routes as read_api_routes
from .sessions_api import routes as sessions_api_routes
from .signature import SignatureError, verify
from .stream_api import routes as stream_api_routes
from .usage_api import routes as usage_api_routes

log = structlog.get_logger(__name__)

ENQUEUE_TIMEOUT_S = 8.0  # well inside the time Stripe waits for an answer
READY_CHECK_TIMEOUT_S = 5.0
def _reject(status: int, outcome: str, error: str) -> JSONResponse:
    metrics.WEBHOOKS.labels(outcome).inc()
    log.warning("webhook.rejected", outcome=outcome, status=status, error=error)
    return JSONResponse({"error": error}, status_code=status)


def create_app(bus: Bus, broker=None, enqueue: Callable[[dict], object] | None = None, *,
               body_timeout_s: float = BODY_TIMEOUT_S) -> Starlette:
    """The ingress (and read API) over `bus`'s dependencies.

    `enqueue(message)` hands a verified event to the workers; by default it sends to the
    `process_stripe_event` actor on `broker` (default: a broker made from `bus.settings`).
    Tests and the benchmark may pass their own.
    """
    settings = bus.settings
    if enqueue is None:
        from ..workers.actors import declare_actors

        if broker is None:
            from ..workers.broker import make_broker

            broker = make_broker(settings)
        enqueue = declare_actors(broker, settings.queue_prefix).process_stripe_event.send
    secrets = [secret.get_secret_value() for secret in settings.webhook_secrets]

    async def stripe_webhook(request: Request) -> Response:
        try:
            body = await read_limited(request, settings.webhook_max_bytes, body_timeout_s)
        except TooLarge:
            return _reject(413, "too_large", f"body over {settings.webhook_max_bytes} bytes")
        except TimeoutError:
            return _reject(408, "too_slow", f"body not received within {body_timeout_s:g} s")
        try:
            verify(body, request.headers.get("stripe-signature"), secrets, settings.webhook_tolerance_s)
        except SignatureError as exc:
            return _reject(400, "bad_signature", str(exc))
        try:
            event = stripe_event.loads(body)
        except stripe_event.NotJSON as exc:
            return _reject(400, "invalid_event", str(exc))
        problem = stripe_event.event_problem(event)
        if problem is not None:
            return _reject(400, "invalid_event", f"body is not a Stripe event: {problem}")

        message = {"event": event, "received_at": bus.now().isoformat()}
        started = time.perf_counter()
        try:
            with anyio.fail_after(ENQUEUE_TIMEOUT_S):
                await anyio.to_thread.run_sync(enqueue, message, abandon_on_cancel=True)
        except Exception as exc:  # refused, unreachable or too slow: Stripe must retry
            metrics.WEBHOOKS.labels("broker_unavailable").inc()
            log.error("webhook.enqueue_failed", event_id=event["id"], event_type=event["type"],
                      outcome="broker_unavailable", error=type(exc).__name__)
            return JSONResponse({"error": "broker unavailable, retry later"}, status_code=503)
        elapsed = time.perf_counter() - started
        metrics.ENQUEUE_SECONDS.observe(elapsed)
        metrics.WEBHOOKS.labels("accepted").inc()
        log.info("webhook.accepted", event_id=event["id"], event_type=event["type"], outcome="accepted",
                 enqueue_ms=round(elapsed * 1000, 2))
        return JSONResponse({"received": True})

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    def check_database() -> None:
        with bus.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def check_broker() -> None:
        from ..workers.broker import ping

        ping(broker)

    async def run_check(check: Callable[[], None]) -> str:
        try:
            with anyio.fail_after(READY_CHECK_TIMEOUT_S):
                await anyio.to_thread.run_sync(check, abandon_on_cancel=True)
            return "ok"
        except Exception as exc:
            return f"unavailable ({type(exc).__name__})"

    async def readyz(_request: Request) -> Response:
        checks = {"database": await run_check(check_database)}
        checks["broker"] = await run_check(check_broker) if broker is not None else "not used"
        ready = all(state in ("ok", "not used") for state in checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    async def metrics_endpoint(_request: Request) -> Response:
        content, content_type = metrics.render()
        return Response(content, media_type=content_type)

    routes = [
        Route("/webhooks/stripe", stripe_webhook, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        *read_api_routes(bus),
        *sessions_api_routes(bus),
        *usage_api_routes(bus),
        *billing_api_routes(bus),
        *plans_api_routes(bus),
        *admin_api_routes(bus),
        *stream_api_routes(bus),
    ]
    middleware = []
    if settings.cors_origins:  # browsers of these origins may call the read API with a tenant token
        middleware.append(Middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "If-None-Match", "Idempotency-Key"],
            expose_headers=["ETag", "Retry-After"], max_age=600))
    app = Starlette(routes=routes, middleware=middleware)
    app.state.bus = bus
    app.state.broker = broker
    return app
