"""One emulator request, transport-free: an API call goes faults (latency, rate limit, random
500) → authentication → idempotency cache → [store lock: catch up real-time billing → handler →
expand → entitlement refresh] → JSON; `/_emulator/…` routes are test controls, not Stripe's
(a control that plays the customer runs the same store-locked part)."""
from __future__ import annotations

import base64
import hashlib
import json
import time
from urllib.parse import urlsplit

from . import forms, lists
from .billing import schedule
from .controls import control
from .errors import ApiError, invalid
from .ids import request_id
from .resources import entitlements
from .router import Request, match
from .store import API_VERSION

REPLAYABLE = (200, 402)   # Stripe saves a result once the endpoint began executing


def handle(emulator, method: str, target: str, headers, body: bytes) -> tuple[int, dict, dict]:
    parts = urlsplit(target)
    path = parts.path.rstrip("/") or "/"
    if path.startswith("/_emulator"):
        if match(method, path)[0] is not None:
            return _act(emulator, method, path, body)
        return control(emulator, method, path, parts.query, body)
    rid = request_id()
    out_headers = {"Request-Id": rid, "Stripe-Version": headers.get("Stripe-Version") or API_VERSION}
    try:
        _authenticate(headers.get("Authorization"))
        emulator.faults.before_request()
        params = forms.decode(parts.query)
        if method == "POST":
            params.update(forms.decode(body.decode("utf-8")))
        key = headers.get("Idempotency-Key") if method in ("POST", "DELETE") else None
        if key is not None:
            out_headers["Idempotency-Key"] = key
            if len(key) > 255:
                raise invalid("The idempotency key provided is too long: it may be up to 255 characters.",
                              param="Idempotency-Key")
        status, payload, replayed = _dispatch(emulator, method, path, params, key, rid)
        if replayed:
            out_headers["Idempotent-Replayed"] = "true"
            out_headers["Original-Request"] = replayed
        return status, out_headers, payload
    except ApiError as exc:
        if exc.should_retry is not None:
            out_headers["Stripe-Should-Retry"] = "true" if exc.should_retry else "false"
        return exc.status, out_headers, exc.body()

def _authenticate(header: str | None) -> None:
    key = None
    if header and header.startswith("Bearer "):
        key = header[7:].strip()
    elif header and header.startswith("Basic "):
        key = base64.b64decode(header[6:]).decode().split(":")[0]
    if not key:
        raise ApiError(401, "invalid_request_error",
                       "You did not provide an API key. You need to provide your API key in the Authorization "
                       "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').")
    if not key.startswith(("sk_test_", "rk_test_")):
        raise ApiError(401, "invalid_request_error",
                       f"Invalid API Key provided: {key[:8]}****. The emulator accepts test-mode keys only.")

def _dispatch(emulator, method: str, path: str, params: dict, key: str | None, rid: str):
    handler, ids = match(method, path)
    if handler is None:
        raise invalid(f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs or we "
                      "can help at https://support.stripe.com/.", status=404)
    fingerprint = hashlib.sha256(json.dumps([method, path, params], sort_keys=True).encode()).hexdigest()
    store = emulator.state
    with store.lock:
        if key is not None and key in store.idempotency:
            saved = store.idempotency[key]
            if saved["endpoint"] != f"{method} {path}":
                raise ApiError(400, "idempotency_error",
                               f"Keys for idempotent requests can only be used for the same endpoint they were "
                               f"first used for ('{saved['endpoint']}' vs '{method} {path}'). Try using a key "
                               f"other than '{key}' if you meant to execute a different request.")
            if saved["fingerprint"] != fingerprint:
                raise ApiError(400, "idempotency_error",
                               "Keys for idempotent requests can only be used with the same parameters they were "
                               f"first used with. Try using a key other than '{key}' if you meant to execute a "
                               "different request.")
            return saved["status"], saved["body"], saved["request_id"]
        store.begin_request(None, None)
        try:
            schedule.run_due(store, None, int(time.time()))   # real-time customers: time has passed
            store.set_request(rid, key)
            request = Request(store=store, method=method, path=path, params=params, idempotency_key=key,
                              request_id=rid, emulator=emulator)
            try:
                result = handler(request, **ids)
                status, body = (result if isinstance(result, tuple) else (200, result))
                body = lists.expand(store, body, params)
            except ApiError as exc:
                if exc.status not in REPLAYABLE:
                    raise
                status, body = exc.status, exc.body()
        finally:
            store.set_request(None, None)
            entitlements.refresh(store, store.touched())
            store.end_request()
        if key is not None:
            store.remember(key, {"endpoint": f"{method} {path}", "fingerprint": fingerprint,
                                 "status": status, "body": body, "request_id": rid})
        return status, body, None

# -- /_emulator controls --------------------------------------------------------------------

def _act(emulator, method: str, path: str, body: bytes) -> tuple[int, dict, dict]:
    """A control that plays the customer (a route its resource registers under /_emulator/):
    a JSON object (or a form, like the API's) in, Stripe's shapes and errors out, events and
    entitlements as for any call."""
    rid = request_id()
    text = body.decode("utf-8", "replace").strip()
    try:
        params = json.loads(text) if text.startswith("{") else forms.decode(text)
    except (ValueError, ApiError):
        params = None
    if not isinstance(params, dict):
        return 400, {}, {"error": {"type": "invalid_request_error", "message": "The body must be a JSON object."}}
    try:
        status, payload, _ = _dispatch(emulator, method, path, params, None, rid)
        return status, {"Request-Id": rid}, payload
    except ApiError as exc:
        return exc.status, {"Request-Id": rid}, exc.body()
