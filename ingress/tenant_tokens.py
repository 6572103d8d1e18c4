"""Tenant tokens: short-lived bearer tokens a product hands to a browser so that its billing
page can call billing-sync directly, for one tenant only.

A token is a JWT (HS256, PyJWT) with `sub` = the tenant id, `aud` = "billing-sync:tenant",
`iss` = "billing-sync", `iat` and `exp` (at most an hour later). It carries no other power:
the routes that take one (billing, invoices, entitlements, the tenant's sessions) compare `sub`
with the tenant in the path, and every other route refuses it (auth.py). It cannot be revoked
before `exp`, hence the short life. The key is `BILLING_BROWSER_TOKEN_SECRET`, else one derived
from the first service token, so every ingress of a deployment agrees without more settings
(rotating that token, or the secret, ends every tenant token at once).
"""
from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

import jwt

from ..contract.ids import is_tenant_id

AUDIENCE = "billing-sync:tenant"
ISSUER = "billing-sync"
ALGORITHM = "HS256"
MAX_TTL_S = 3600


def signing_key(settings) -> bytes:
    if settings.browser_token_secret is not None and settings.browser_token_secret.get_secret_value():
        return settings.browser_token_secret.get_secret_value().encode()
    service = settings.api_tokens[0].get_secret_value().encode() if settings.api_tokens else b""
    return hmac.new(service, b"billing-sync tenant tokens v1", hashlib.sha256).digest()


def issue(key: bytes, tenant_id: str, now: datetime, ttl_s: int) -> tuple[str, datetime]:
    """A token for `tenant_id` and when it expires (whole seconds, as JWT has them)."""
    issued = int(now.timestamp())
    expires = issued + min(int(ttl_s), MAX_TTL_S)
    token = jwt.encode({"sub": tenant_id, "aud": AUDIENCE, "iss": ISSUER, "iat": issued, "exp": expires},
                       key, algorithm=ALGORITHM)
    return token, datetime.fromtimestamp(expires, now.tzinfo)


def tenant_of(key: bytes, token: str, now: datetime) -> str | None:
    """The tenant a valid, unexpired token of ours is for; None for anything else (a service
    token, another key's token, an expired or altered one, `alg: none`)."""
    if token.count(".") != 2:
        return None  # not a JWT: spare the decoder
    try:
        claims = jwt.decode(token, key, algorithms=[ALGORITHM], audience=AUDIENCE, issuer=ISSUER,
                            # Expiry is checked below against the caller's clock (the bus's now).
                            options={"require": ["exp", "iat", "sub"], "verify_exp": False, "verify_iat": False})
    except jwt.PyJWTError:
        return None
    exp, iat = claims["exp"], claims["iat"]
    if not (isinstance(exp, int) and isinstance(iat, int)) or exp - iat > MAX_TTL_S or exp <= now.timestamp():
        return None
    tenant_id = claims["sub"]
    return tenant_id if is_tenant_id(tenant_id) else None
