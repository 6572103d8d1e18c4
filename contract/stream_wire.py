"""The entitlement stream's wire (`GET /v1/stream`, README "Entitlement stream"): its event names,
the SSE framing the ingress writes (`sse_message`) and the client reads (`SSEDecoder`), and a
tenant's entitlements as a cache holds them (`TenantEntitlements`). Pure code, shared by
`ingress/stream_api.py` and `client.py`, so the two cannot disagree on the format.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

ENTITLEMENTS_CHANGED = "billing.entitlements.changed"
ACCOUNT_CHANGED = "billing.account.changed"
STREAMED_TYPES = (ENTITLEMENTS_CHANGED, ACCOUNT_CHANGED)
READY = "ready"  # caught up: {"position", "resumed"}; carries the position as its id
RESET = "reset"  # cannot resume: {"reason": "unknown_position" | "retention", "position"}
SNAPSHOT = "snapshot"  # one tenant's entitlements (as GET …/entitlements), no id
RESET_REASONS = ("unknown_position", "retention")
KEEPALIVE = b": keepalive\n\n"


def sse_message(data: dict[str, Any], *, event: str, id: str | None = None) -> bytes:
    """One SSE message; `data` as one line of compact JSON (JSON escapes every newline)."""
    head = f"id: {id}\n" if id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


@dataclass(frozen=True)
class Message:
    event: str
    data: str
    id: str | None  # None: the message had no id field (the last id stays what it was)

    def json(self) -> Any:
        return json.loads(self.data)


@dataclass
class SSEDecoder:
    """The SSE parsing rules of the HTML standard ("event stream interpretation"), one line at a
    time (without its line ending). Comments (`: …`) and `retry` are consumed; a blank line
    dispatches the message, if it had any data."""

    _event: str = ""
    _data: list[str] = field(default_factory=list)
    _id: str | None = None

    def feed(self, line: str) -> Message | None:
        if line == "":
            message = None
            if self._data:
                message = Message(self._event or "message", "\n".join(self._data), self._id)
            self._event, self._data, self._id = "", [], None
            return message
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = value
        return None


@dataclass(frozen=True)
class TenantEntitlements:
    """A tenant's entitlements as the stream carries them (a `snapshot`, or the data of a
    `billing.entitlements.changed`). `enabled` is what `check` answers from: the features, and
    the limits with a positive value (the read API's `enabled`)."""

    tenant_id: str
    version: int
    plan: str
    status: str
    features: frozenset[str]
    limits: dict[str, int]
    period_end: str | None
    enabled: frozenset[str]

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> TenantEntitlements:
        features = frozenset(document.get("features") or ())
        limits = dict(document.get("limits") or {})
        enabled = features | {name for name, value in limits.items() if value is not None and value > 0}
        return cls(tenant_id=document["tenant_id"], version=int(document["version"]), plan=document.get("plan", ""),
                   status=document.get("status", ""), features=features, limits=limits,
                   period_end=document.get("period_end"), enabled=frozenset(enabled))
