"""The self-serve billing read API (issue 9), served from the synced copy, never by a Stripe call
per request (except `sync`, which is for that):

    GET  /v1/tenants/{tenant_id}/billing    the billing page's document, its version, an ETag
    GET  /v1/tenants/{tenant_id}/invoices   newest first, Stripe-style cursor pages
    POST /v1/tenants/{tenant_id}/sync       reconcile the tenant from Stripe now (rate-limited fleet-wide)
    POST /v1/tenants/{tenant_id}/tokens     a tenant token for a browser (service token only)

`billing` and `invoices` take a tenant token for their own tenant too (auth.py). A tenant id
that breaks the tenant-id rule is a 400 before any database read; bad query parameters are a
400 naming the parameter. Database and Stripe calls run in the thread pool.
"""
from __future__ import annotations

from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..errors import BillingSyncError, TransientError
from ..handlers.billing_document import billing_document, iso
from ..handlers.messagebus import Bus
from ..handlers.reconcile import reconcile_tenant
from . import tenant_tokens
from .auth import Authenticator
from .read_api import _etag_matches, _snapshot_json
from .sync_limit import TenantRateLimit

MAX_PAGE = 100
DEFAULT_PAGE = 10


def bad_parameter(param: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": "invalid_parameter", "param": param, "detail": detail}, status_code=400)


def unknown_tenant(tenant_id: str) -> JSONResponse:
    return JSONResponse({"error": "unknown_tenant", "tenant_id": tenant_id}, status_code=404)


def billing_etag(body: dict) -> str:
    """Moves with the version, and with the card's status, which turns with the clock alone."""
    tenant = quote(body["tenant_id"], safe=":", errors="surrogatepass")
    return f'"{tenant}-b{body["version"]}-{body["payment_method"]["status"]}"'


def invoice_json(row) -> dict:
    return {"id": row.id, "number": row.number, "status": row.status, "amount_due": row.amount_due,
            "amount_paid": row.amount_paid, "currency": row.currency, "period_start": iso(row.period_start),
            "period_end": iso(row.period_end), "created": iso(row.created),
            "hosted_invoice_url": row.hosted_invoice_url, "invoice_pdf": row.invoice_pdf}


def page_params(query) -> tuple[int, str | None] | JSONResponse:
    """`limit` (1–100, default 10) and `starting_after` (an invoice id); anything else is a 400."""
    unknown = sorted(set(query.keys()) - {"limit", "starting_after"})
    if unknown:
        return bad_parameter(unknown[0], "unknown parameter; this endpoint takes limit and starting_after")
    repeated = [name for name in query if len(query.getlist(name)) > 1]
    if repeated:
        return bad_parameter(repeated[0], "given more than once")
    raw = query.get("limit", str(DEFAULT_PAGE))
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        return bad_parameter("limit", f"an integer from 1 to {MAX_PAGE}")
    cursor = query.get("starting_after")
    if cursor is not None and not (0 < len(cursor) <= 64 and cursor.isascii()
                                   and cursor.replace("_", "").isalnum()):
        return bad_parameter("starting_after", "an invoice id")
    return int(raw), cursor


def routes(bus: Bus) -> list[Route]:
    auth = Authenticator(bus)
    sync_limit = TenantRateLimit(bus, bus.settings.tenant_sync_per_minute / 60.0, burst=3)

    def load_billing(tenant_id: str) -> dict | None:
        with bus.uow_factory() as uow:
            return billing_document(uow, tenant_id, bus.catalog, bus.now())

    def load_invoices(tenant_id: str, limit: int, cursor: str | None) -> dict | JSONResponse:
        with bus.uow_factory() as uow:
            after = None
            if cursor is not None:
                found = uow.invoices.owner_and_created(cursor)
                if found is None or found[0] != tenant_id:
                    return bad_parameter("starting_after", "no such invoice for this tenant")
                after = (cursor, found[1])
            rows, more = uow.invoices.page(tenant_id, limit, after)
            if not rows and cursor is None and uow.tenants.get(tenant_id) is None:
                return unknown_tenant(tenant_id)
            return {"object": "list", "data": [invoice_json(r) for r in rows], "has_more": more}

    def synced(tenant_id: str) -> dict | None:
        result = bus.call(reconcile_tenant, tenant_id, "sync")
        if not result["found"]:
            return None
        with bus.uow_factory() as uow:
            snapshot = uow.snapshots.get(tenant_id)
            return {"entitlements": _snapshot_json(snapshot) if snapshot else None,
                    "billing": billing_document(uow, tenant_id, bus.catalog, bus.now())}

    def checked(request: Request, *, browsers: bool) -> tuple[str, Response | None]:
        return request.path_params["tenant_id"], auth.tenant_refusal(request, browsers=browsers)

    async def billing(request: Request) -> Response:
        tenant_id, denied = checked(request, browsers=True)
        if denied:
            return denied
        body = await run_in_threadpool(load_billing, tenant_id)
        if body is None:
            return unknown_tenant(tenant_id)
        headers = {"ETag": billing_etag(body), "Cache-Control": "no-cache"}
        if _etag_matches(request.headers.get("if-none-match"), headers["ETag"]):
            return Response(status_code=304, headers=headers)
        return JSONResponse(body, headers=headers)

    async def invoices(request: Request) -> Response:
        tenant_id, denied = checked(request, browsers=True)
        if denied:
            return denied
        params = page_params(request.query_params)
        if isinstance(params, Response):
            return params
        body = await run_in_threadpool(load_invoices, tenant_id, *params)
        return body if isinstance(body, Response) else JSONResponse(body, headers={"Cache-Control": "no-cache"})

    async def sync(request: Request) -> Response:
        tenant_id, denied = checked(request, browsers=False)
        if denied:
            return denied
        try:
            retry_after = await run_in_threadpool(sync_limit.take, tenant_id)
            if retry_after is not None:
                return JSONResponse({"error": "rate_limited", "retry_after": retry_after}, status_code=429,
                                    headers={"Retry-After": str(retry_after)})
            body = await run_in_threadpool(synced, tenant_id)
        except TransientError:  # Stripe or the database unavailable, or rate-limited: try again
            return JSONResponse({"error": "bms_unavailable"}, status_code=503, headers={"Retry-After": "1"})
        except BillingSyncError as exc:  # Stripe refused a read (a key without access, …)
            return JSONResponse({"error": "bms_error", "detail": str(exc)[:200]}, status_code=502)
        return unknown_tenant(tenant_id) if body is None else JSONResponse(body)

    async def tokens(request: Request) -> Response:
        tenant_id, denied = checked(request, browsers=False)
        if denied:
            return denied
        token, expires_at = tenant_tokens.issue(auth.key, tenant_id, bus.now(), bus.settings.browser_token_ttl_s)
        return JSONResponse({"token": token, "expires_at": expires_at.isoformat(), "tenant_id": tenant_id},
                            status_code=201, headers={"Cache-Control": "no-store"})

    return [
        Route("/v1/tenants/{tenant_id}/billing", billing, methods=["GET"]),
        Route("/v1/tenants/{tenant_id}/invoices", invoices, methods=["GET"]),
        Route("/v1/tenants/{tenant_id}/sync", sync, methods=["POST"]),
        Route("/v1/tenants/{tenant_id}/tokens", tokens, methods=["POST"]),
    ]
