"""The self-serve session endpoints (service bearer token, as the read API):

    POST /v1/tenants/{tenant_id}/checkout-sessions  {plan, seats?, trial_days?, success_url, cancel_url}
                                                    → 201 {id, url, expires_at}
    POST /v1/tenants/{tenant_id}/portal-sessions    {return_url, flow?} → 201 {id, url}
    POST /v1/tenants/{tenant_id}/setup-intents      {} → 201 {client_secret}
    GET  /v1/tenants/{tenant_id}/preview?plan=&seats=  → what the change costs now, its proration_date

Input is checked once, here (ingress/session_requests.py): 400 `invalid_request` naming the
field. The POSTs take an `Idempotency-Key` header; a repeat returns the first answer
(handlers/sessions.py). Stripe calls run in the thread pool, off the event loop.
"""
from __future__ import annotations

from collections.abc import Callable

import structlog
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..errors import PermanentError, TransientError, UnknownPlan, UnknownTenant
from ..handlers import sessions
from ..handlers.messagebus import Bus
from . import session_requests as schema
from .auth import Authenticator
from .bodies import BODY_TIMEOUT_S, TooLarge, error_answer, read_limited

log = structlog.get_logger(__name__)


async def read_body(request: Request) -> bytes:
    """The body of a JSON request (sessions, usage) within MAX_BODY_BYTES; BadRequest when over."""
    try:
        return await read_limited(request, schema.MAX_BODY_BYTES)
    except TooLarge:
        raise schema.BadRequest(f"body over {schema.MAX_BODY_BYTES} bytes") from None


# The session endpoints a browser may call with a tenant token (auth.py).
BROWSER_SESSIONS = ("checkout-sessions", "portal-sessions", "setup-intents")


def routes(bus: Bus) -> list[Route]:
    auth = Authenticator(bus)  # a tenant token may open its own tenant's sessions (not the preview)

    async def serve(request: Request, work: Callable[[str, bytes], tuple[int, dict]]) -> Response:
        """Auth, the tenant id, the body (bounded), then `work(tenant_id, body)` in the thread
        pool; errors as answers."""
        refused = auth.tenant_refusal(request, browsers=request.url.path.rsplit("/", 1)[-1] in BROWSER_SESSIONS)
        if refused is not None:
            return refused
        tenant_id = request.path_params["tenant_id"]
        try:
            raw = await read_body(request)
            status, body = await run_in_threadpool(work, tenant_id, raw)
        except schema.BadRequest as exc:
            return error_answer(400, "invalid_request", str(exc))
        except TimeoutError:
            return error_answer(408, "too_slow", f"body not received within {BODY_TIMEOUT_S:g} s")
        except sessions.SessionRefused as exc:
            return error_answer(409, exc.error, exc.detail)
        except UnknownTenant as exc:
            return error_answer(404, "unknown_tenant", str(exc))
        except UnknownPlan as exc:
            return error_answer(400, "unknown_plan", str(exc))
        except TransientError as exc:  # Stripe or the database: try again shortly
            log.warning("session.unavailable", path=request.url.path, error=type(exc).__name__)
            return error_answer(503, "bms_unavailable", "Stripe or the database is unavailable; retry",
                          **{"Retry-After": "1"})
        except PermanentError as exc:  # Stripe refused the request (e.g. a portal flow it cannot open)
            return error_answer(400, "invalid", str(exc))
        return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})

    def post(endpoint: Callable, model: type) -> Callable:
        async def handle(request: Request) -> Response:
            def work(tenant_id: str, body: bytes) -> tuple[int, dict]:
                key = schema.idempotency_key(request.headers.get("idempotency-key"))
                return bus.call(endpoint, tenant_id, key, schema.parse_body(model, body))

            return await serve(request, work)

        return handle

    async def preview(request: Request) -> Response:
        def work(tenant_id: str, _body: bytes) -> tuple[int, dict]:
            return 200, bus.call(sessions.preview, tenant_id, schema.parse_preview_query(dict(request.query_params)))

        return await serve(request, work)

    return [
        Route("/v1/tenants/{tenant_id}/checkout-sessions", post(sessions.checkout_session,
                                                                schema.CheckoutSessionRequest), methods=["POST"]),
        Route("/v1/tenants/{tenant_id}/portal-sessions", post(sessions.portal_session, schema.PortalSessionRequest),
              methods=["POST"]),
        Route("/v1/tenants/{tenant_id}/setup-intents", post(sessions.setup_intent, schema.SetupIntentRequest),
              methods=["POST"]),
        Route("/v1/tenants/{tenant_id}/preview", preview, methods=["GET"]),
    ]
