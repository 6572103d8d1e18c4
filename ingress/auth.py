"""Who may call the read API and the session endpoints: service tokens (`BILLING_API_TOKENS`,
service_auth.py's one check) everywhere, tenant tokens (tenant_tokens.py) only on the routes a
browser needs, and only for their own tenant.

    401 (with WWW-Authenticate)  no bearer token, or one that is neither kind
    403 {"error": "forbidden"}   a tenant token on another tenant, or on a route not open to it
"""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from ..contract.ids import is_tenant_id
from ..handlers.messagebus import Bus
from . import tenant_tokens
from .service_auth import bearer_check, invalid_tenant_id, unauthorized


class Authenticator:
    def __init__(self, bus: Bus):
        self._bus = bus
        self._is_service = bearer_check(bus.settings)
        self._key = tenant_tokens.signing_key(bus.settings)

    @property
    def key(self) -> bytes:
        return self._key

    def deny(self, request: Request, tenant_id: str | None = None) -> JSONResponse | None:
        """None when the caller may go on: a service token, or (when `tenant_id` is given, i.e.
        the route is open to browsers) a tenant token for exactly that tenant."""
        if self._is_service(request):
            return None
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        presented = presented.strip()
        if scheme.lower() != "bearer" or not presented:
            return unauthorized()
        owner = tenant_tokens.tenant_of(self._key, presented, self._bus.now())
        if owner is None:
            return unauthorized()
        if tenant_id is None or owner != tenant_id:
            return JSONResponse({"error": "forbidden"}, status_code=403)
        return None

    def tenant_refusal(self, request: Request, *, browsers: bool = True) -> JSONResponse | None:
        """For a route under /v1/tenants/{tenant_id}: `deny` (for that tenant when the route is
        open to browsers), then 400 for a tenant id that breaks the rule; None: go on."""
        tenant_id = request.path_params["tenant_id"]
        denied = self.deny(request, tenant_id if browsers else None)
        if denied is None and not is_tenant_id(tenant_id):
            return invalid_tenant_id()
        return denied
