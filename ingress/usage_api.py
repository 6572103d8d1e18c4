"""The usage endpoints (a service token, or a tenant token for its own tenant: auth.py):

    POST /v1/tenants/{tenant_id}/usage   {feature, quantity, idempotency_key, mode?, timestamp?}
         → 200 {allowed, used, limit, remaining, period_start, period_end}
    POST …/usage/reservations            {feature, quantity, ttl_s} → 200 {reservation_id, allowed, …}
    POST …/usage/reservations/{id}/commit   {quantity?} → 200 {reservation_id, committed, allowed, …}
    POST …/usage/reservations/{id}/release  {} → 200 {reservation_id, released}

Input is checked once, here (ingress/usage_requests.py): 400 `invalid_request` naming the field.
The work is handlers/quota.py and handlers/reservations.py, in the thread pool; no Stripe call.
"""
from __future__ import annotations

import re
from collections.abc import Callable

import structlog
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..errors import TransientError, UnknownTenant
from ..handlers import quota, reservations
from ..handlers.messagebus import Bus
from . import session_requests
from . import usage_requests as schema
from .auth import Authenticator
from .bodies import BODY_TIMEOUT_S, error_answer
from .sessions_api import read_body

log = structlog.get_logger(__name__)
_RESERVATION_ID = re.compile(schema.RESERVATION_ID)


def routes(bus: Bus) -> list[Route]:
    auth = Authenticator(bus)  # a tenant token consumes and reserves for its own tenant only

    def endpoint(model: type, work: Callable[[Request, str, object], dict]) -> Callable:
        async def handle(request: Request) -> Response:
            refused = auth.tenant_refusal(request)
            if refused is not None:
                return refused
            tenant_id = request.path_params["tenant_id"]
            reservation_id = request.path_params.get("reservation_id")
            if reservation_id is not None and not _RESERVATION_ID.match(reservation_id):
                return error_answer(404, "unknown_reservation", "no such reservation")
            try:
                body = session_requests.parse_body(model, await read_body(request))
                answer = await run_in_threadpool(work, request, tenant_id, body)
            except (session_requests.BadRequest, quota.OutsidePeriod) as exc:
                return error_answer(400, "invalid_request", str(exc))
            except TimeoutError:
                return error_answer(408, "too_slow", f"body not received within {BODY_TIMEOUT_S:g} s")
            except UnknownTenant as exc:
                return error_answer(404, "unknown_tenant", str(exc))
            except reservations.UnknownReservation:
                return error_answer(404, "unknown_reservation", "no such reservation")
            except reservations.ReservationClosed as exc:
                return error_answer(409, "reservation_closed", str(exc))
            except TransientError as exc:
                log.warning("usage.unavailable", path=request.url.path, error=type(exc).__name__)
                return error_answer(503, "unavailable", "the database is unavailable; retry", **{"Retry-After": "1"})
            return JSONResponse(answer, headers={"Cache-Control": "no-store"})

        return handle

    def consume(_request: Request, tenant_id: str, body) -> dict:
        return bus.call(quota.consume, tenant_id, body.feature, body.quantity, body.idempotency_key,
                        body.mode == "hard", body.timestamp)

    def reserve(_request: Request, tenant_id: str, body) -> dict:
        return bus.call(reservations.reserve, tenant_id, body.feature, body.quantity, body.ttl_s)

    def commit(request: Request, tenant_id: str, body) -> dict:
        return bus.call(reservations.commit, tenant_id, request.path_params["reservation_id"], body.quantity)

    def release(request: Request, tenant_id: str, _body) -> dict:
        return bus.call(reservations.release, tenant_id, request.path_params["reservation_id"])

    base = "/v1/tenants/{tenant_id}/usage"
    return [
        Route(base, endpoint(schema.ConsumeRequest, consume), methods=["POST"]),
        Route(f"{base}/reservations", endpoint(schema.ReserveRequest, reserve), methods=["POST"]),
        Route(f"{base}/reservations/{{reservation_id}}/commit", endpoint(schema.CommitRequest, commit),
              methods=["POST"]),
        Route(f"{base}/reservations/{{reservation_id}}/release", endpoint(schema.ReleaseRequest, release),
              methods=["POST"]),
    ]
