"""The read API: a tenant's entitlements for the product's other services.

    GET /v1/tenants/{tenant_id}/entitlements            the snapshot, its version, an ETag
    GET /v1/tenants/{tenant_id}/entitlements/{feature}  enabled, limit, used, remaining

Bearer tokens from BILLING_API_TOKENS, or a tenant token for the path's tenant (ingress/auth.py;
401 first, whatever the path; 403 for a tenant token on another tenant). A tenant id that breaks
the tenant-id rule (contract/ids.py) gets 400 `invalid_tenant_id` before any database call. The
ETag is `"<tenant>-v<version>"`; versions only grow on a real change, so a client polling with
If-None-Match gets 304 until something changed.
Database calls are synchronous SQLAlchemy and run in the thread pool, off the event loop.
"""
from __future__ import annotations

from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..handlers.messagebus import Bus
from ..handlers.usage import current_usage
from ..models import EntitlementSnapshot
from .auth import Authenticator


def routes(bus: Bus) -> list[Route]:
    auth = Authenticator(bus)  # service tokens, and tenant tokens for their own tenant

    def refusal(request: Request) -> JSONResponse | None:
        return auth.tenant_refusal(request)

    def not_found(tenant_id: str) -> JSONResponse:
        return JSONResponse({"error": "unknown_tenant", "tenant_id": tenant_id}, status_code=404)

    def load_snapshot(tenant_id: str) -> dict | None:
        with bus.uow_factory() as uow:
            snapshot = uow.snapshots.get(tenant_id)
            return _snapshot_json(snapshot) if snapshot else None

    def load_feature(tenant_id: str, feature: str) -> dict | None:
        with bus.uow_factory() as uow:
            snapshot = uow.snapshots.get(tenant_id)
            if snapshot is None:
                return None
            limits = snapshot.limits or {}
            limit = limits.get(feature)
            enabled = feature in (snapshot.features or []) or (limit is not None and limit > 0)
            # Counters exist only for the catalog's meters (usage.recorded refuses others), so any
            # other name, however odd, has used 0 without a query.
            counted = feature in bus.catalog.meters or feature in limits
            used = current_usage(uow, tenant_id, feature, bus.now()) if counted else 0
            remaining = max(limit - used, 0) if limit is not None else None
            return {"tenant_id": tenant_id, "feature": feature, "enabled": enabled, "limit": limit,
                    "used": used, "remaining": remaining, "version": snapshot.version}

    async def entitlements(request: Request) -> Response:
        if (refused := refusal(request)) is not None:
            return refused
        tenant_id = request.path_params["tenant_id"]
        body = await run_in_threadpool(load_snapshot, tenant_id)
        if body is None:
            return not_found(tenant_id)
        etag = etag_for(tenant_id, body["version"])
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        if _etag_matches(request.headers.get("if-none-match"), etag):
            return Response(status_code=304, headers=headers)
        return JSONResponse(body, headers=headers)

    async def feature(request: Request) -> Response:
        if (refused := refusal(request)) is not None:
            return refused
        tenant_id = request.path_params["tenant_id"]
        body = await run_in_threadpool(load_feature, tenant_id, request.path_params["feature"])
        if body is None:
            return not_found(tenant_id)
        return JSONResponse(body, headers={"Cache-Control": "no-cache"})

    return [
        Route("/v1/tenants/{tenant_id}/entitlements", entitlements, methods=["GET"]),
        Route("/v1/tenants/{tenant_id}/entitlements/{feature}", feature, methods=["GET"]),
    ]


def _snapshot_json(snapshot: EntitlementSnapshot) -> dict:
    return {
        "tenant_id": snapshot.tenant_id,
        "version": snapshot.version,
        "plan": snapshot.plan,
        "status": snapshot.status,
        "features": sorted(snapshot.features or []),
        "limits": dict(snapshot.limits or {}),
        "period_end": snapshot.period_end.isoformat() if snapshot.period_end else None,
        "updated_at": snapshot.updated_at.isoformat() if snapshot.updated_at else None,
    }


def etag_for(tenant_id: str, version: int) -> str:
    """`"<tenant_id>-v<version>"`, unchanged for every id that follows the tenant-id rule. An id
    from before the rule (any text) has everything but letters, digits and `_ . : -`
    percent-encoded, so the header is always ASCII and never holds a quote."""
    return f'"{quote(tenant_id, safe=":", errors="surrogatepass")}-v{version}"'


def _etag_matches(header: str | None, etag: str) -> bool:
    """If-None-Match: `*`, or a list of (possibly weak) tags, compared weakly as RFC 9110 says."""
    if not header:
        return False
    if header.strip() == "*":
        return True
    tags = [tag.strip().removeprefix("W/") for tag in header.split(",")]
    return etag in tags
