"""Reading a request body within a size and a time limit, for every route that takes one.

A body is never read whole into memory before its size is known: a declared Content-Length over
the limit is refused at once, and the stream is cut as soon as it passes the limit. A slow or
lying client must not hold a connection, so the whole body must arrive within a deadline.
"""
from __future__ import annotations

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse

# Stripe sends a webhook's body (at most a few hundred KiB) at once; ten seconds is generous, and
# the product's JSON bodies are smaller still.
BODY_TIMEOUT_S = 10.0


class TooLarge(Exception):
    """The body is over the route's limit."""


async def read_limited(request: Request, max_bytes: int, timeout_s: float = BODY_TIMEOUT_S) -> bytes:
    """The raw body; TooLarge as soon as it is known to exceed `max_bytes`, TimeoutError when it
    has not all arrived within `timeout_s`."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise TooLarge
    body = bytearray()
    with anyio.fail_after(timeout_s):
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_bytes:
                raise TooLarge
    return bytes(body)


def error_answer(status: int, error: str, detail: str, **headers: str) -> JSONResponse:
    """The read API's error shape: `{"error": <code>, "detail": <what is wrong>}`."""
    return JSONResponse({"error": error, "detail": detail}, status_code=status, headers=headers or None)
