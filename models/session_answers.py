"""Session answers (`session_answers`): the first answer of each self-serve session request under
its Idempotency-Key (checkout, portal, setup intent), kept so a repeat returns it."""
from __future__ import annotations

from sqlalchemy.orm import Session

from .tables import SessionAnswer


class SessionAnswers:
    """The stored answers, in the unit of work's transaction (nothing here commits)."""

    def __init__(self, session: Session):
        self._session = session

    def get(self, tenant_id: str, endpoint: str, idempotency_key: str) -> SessionAnswer | None:
        return self._session.get(SessionAnswer, (tenant_id, endpoint, idempotency_key))

    def add(self, tenant_id: str, endpoint: str, idempotency_key: str, *, request_digest: str, status: int,
            body: dict) -> None:
        self._session.add(SessionAnswer(tenant_id=tenant_id, endpoint=endpoint, idempotency_key=idempotency_key,
                                        request_digest=request_digest, status=status, body=body))
