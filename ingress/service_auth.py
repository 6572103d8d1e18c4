"""The read API's and the session endpoints' one bearer-token check (BILLING_API_TOKENS) and the
answers every tenant route gives before it reads anything: 401 and 400 `invalid_tenant_id`."""
from __future__ import annotations

import hmac
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse

from ..contract.ids import TENANT_ID_RULE, is_tenant_id


def bearer_check(settings, configured=None) -> Callable[[Request], bool]:
    """Whether a request carries one of the configured service tokens (or of `configured`, a list
    of secrets: the admin tokens)."""
    configured = settings.api_tokens if configured is None else configured
    tokens = [token.get_secret_value().encode() for token in configured if token.get_secret_value()]

    def authorized(request: Request) -> bool:
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not presented:
            return False
        presented_bytes = presented.strip().encode()
        # Compare with every token (no early exit), each in constant time.
        matches = [hmac.compare_digest(presented_bytes, token) for token in tokens]
        return any(matches)

    return authorized


def tenant_refusal(authorized: Callable[[Request], bool], request: Request) -> JSONResponse | None:
    """401 without a valid token (first, whatever the path), 400 for a tenant id that breaks the
    rule; None when the request may be answered."""
    if not authorized(request):
        return unauthorized()
    if not is_tenant_id(request.path_params["tenant_id"]):
        return invalid_tenant_id()
    return None


def unauthorized() -> JSONResponse:
    return JSONResponse({"error": "unauthorized"}, status_code=401,
                        headers={"WWW-Authenticate": 'Bearer realm="billing-sync"'})


def invalid_tenant_id() -> JSONResponse:
    return JSONResponse({"error": "invalid_tenant_id", "detail": TENANT_ID_RULE}, status_code=400)
