"""The admin endpoints, for operators and support staff (and the operator console):

    GET /v1/admin/tenants/{tenant_id}/timeline      the tenant's story in time order
    GET /v1/admin/tenants/{tenant_id}/explanation   why it has what it has (`?live=1`: and what Stripe says now)

Bearer tokens from `BILLING_ADMIN_TOKENS` only: a service token (`BILLING_API_TOKENS`) or a
tenant token is 401 here, as an admin token is on the product's routes; with no admin token set
the endpoints answer 401 to everyone. A tenant id that breaks the rule is 400 before anything is
read; query parameters are checked like the read API's (400 `invalid_parameter` naming it).
Database reads (and the live Stripe read) run in the thread pool.
"""
from __future__ import annotations

from datetime import UTC, datetime

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..contract.ids import is_tenant_id
from ..errors import BillingSyncError
from ..handlers.messagebus import Bus
from ..handlers.tenant_explanation import explain_tenant
from ..handlers.tenant_timeline import DEFAULT_LIMIT, MAX_LIMIT, tenant_timeline
from .billing_api import bad_parameter
from .service_auth import bearer_check, invalid_tenant_id, unauthorized


def _query(request: Request, allowed: set[str]) -> JSONResponse | None:
    query = request.query_params
    unknown = sorted(set(query.keys()) - allowed)
    if unknown:
        return bad_parameter(unknown[0], f"unknown parameter; this endpoint takes {', '.join(sorted(allowed))}")
    repeated = [name for name in query if len(query.getlist(name)) > 1]
    return bad_parameter(repeated[0], "given more than once") if repeated else None


def since_param(raw: str | None) -> datetime | None:
    """An ISO-8601 time (UTC when it has no zone); raises ValueError."""
    if raw is None:
        return None
    if not raw.isascii() or len(raw) > 40:
        raise ValueError(raw)
    at = datetime.fromisoformat(raw)
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def routes(bus: Bus) -> list[Route]:
    is_admin = bearer_check(bus.settings, bus.settings.admin_tokens)

    def refusal(request: Request) -> JSONResponse | None:
        if not is_admin(request):
            return unauthorized()
        return None if is_tenant_id(request.path_params["tenant_id"]) else invalid_tenant_id()

    def unknown(tenant_id: str) -> JSONResponse:
        return JSONResponse({"error": "unknown_tenant", "tenant_id": tenant_id}, status_code=404)

    async def timeline(request: Request) -> Response:
        if (refused := refusal(request) or _query(request, {"limit", "since"})) is not None:
            return refused
        raw = request.query_params.get("limit", str(DEFAULT_LIMIT))
        if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
            return bad_parameter("limit", f"an integer from 1 to {MAX_LIMIT}")
        try:
            since = since_param(request.query_params.get("since"))
        except ValueError:
            return bad_parameter("since", "an ISO-8601 time, e.g. 2026-12-01T12:00:00Z")
        tenant_id = request.path_params["tenant_id"]
        document = await run_in_threadpool(bus.call, tenant_timeline, tenant_id, since=since, limit=int(raw))
        return JSONResponse(document) if document["found"] else unknown(tenant_id)

    async def explanation(request: Request) -> Response:
        if (refused := refusal(request) or _query(request, {"live"})) is not None:
            return refused
        live = request.query_params.get("live", "0")
        if live not in ("0", "1"):
            return bad_parameter("live", "0 or 1")
        tenant_id = request.path_params["tenant_id"]
        try:
            document = await run_in_threadpool(bus.call, explain_tenant, tenant_id, live=live == "1")
        except BillingSyncError as exc:  # the database is unavailable
            return JSONResponse({"error": "unavailable", "detail": str(exc)[:200]}, status_code=503,
                                headers={"Retry-After": "1"})
        return JSONResponse(document) if document["found"] else unknown(tenant_id)

    return [
        Route("/v1/admin/tenants/{tenant_id:str}/timeline", timeline, methods=["GET"]),
        Route("/v1/admin/tenants/{tenant_id:str}/explanation", explanation, methods=["GET"]),
    ]
