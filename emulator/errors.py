"""Stripe's error shape: `{"error": {"type", "code", "message", "param", ...}}` plus a status."""
from __future__ import annotations


class ApiError(Exception):
    def __init__(self, status: int, type_: str, message: str, *, code: str | None = None,
                 param: str | None = None, extra: dict | None = None, should_retry: bool | None = None):
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.code = code
        self.param = param
        self.extra = extra or {}
        self.should_retry = should_retry

    def body(self) -> dict:
        error = {"type": self.type, "message": self.message}
        if self.code:
            error["code"] = self.code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param:
            error["param"] = self.param
        error.update(self.extra)
        return {"error": error}


def invalid(message: str, *, param: str | None = None, code: str | None = None, status: int = 400) -> ApiError:
    return ApiError(status, "invalid_request_error", message, code=code, param=param)


def missing(kind: str, object_id: str, *, param: str | None = "id") -> ApiError:
    return ApiError(404, "invalid_request_error", f"No such {kind}: '{object_id}'", code="resource_missing",
                    param=param)


def card_declined(*, charge: str | None = None, payment_method: str | None = None) -> ApiError:
    extra: dict = {"decline_code": "generic_decline"}
    if charge:
        extra["charge"] = charge
    return ApiError(402, "card_error", "Your card was declined.", code="card_declined", extra=extra)
