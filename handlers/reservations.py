"""Reservations: a quantity held against a period's quota for work whose cost is known only at
its end (`POST …/usage/reservations`, `…/{id}/commit`, `…/{id}/release`).

A reservation adds to the counter's `reserved`, so hard consumptions see it as spent; committing
gives it back and records the final quantity (soft: the work is done, whatever it cost);
releasing gives it back. One that outlives its `ttl_s` is released by the next consumption of its
feature that would be refused, or by the scheduler's job (handlers/quota.release_expired_job),
whichever comes first; committing an expired reservation is refused. Caveat: until one of them
runs, an expired reservation still counts in `remaining`.
"""
from __future__ import annotations

import uuid
from typing import Any
from datetime import datetime, timedelta

from ..errors import PermanentError
from ..models import UnitOfWork, UsageReservation, database_errors_are_transient
from .dependencies import Clock, UowFactory
from .quota import answer, consumption_period, feature_limit, record, release_expired, take


class UnknownReservation(PermanentError):
    """404 `unknown_reservation`."""


class ReservationClosed(PermanentError):
    """409 `reservation_closed`: committed, released or expired already."""


def reserve(tenant_id: str, feature: str, quantity: int, ttl_s: int, *, uow_factory: UowFactory,
            now: Clock) -> dict[str, Any]:
    """Hold `quantity` when it fits: the answer with `reservation_id` (null when refused)."""
    moment = now()
    with database_errors_are_transient(), uow_factory() as uow:
        limit = feature_limit(uow, tenant_id, feature)
        period = consumption_period(uow, tenant_id, moment)
        assert period is not None  # `now` is never before the current period's start
        fit, used, reserved = take(uow, tenant_id, feature, period, limit, reserved=quantity, hard=True, now=moment)
        reservation_id = None
        if fit:
            reservation_id = f"rsv_{uuid.uuid4().hex}"
            uow.quotas.hold(UsageReservation(
                id=reservation_id, tenant_id=tenant_id, feature=feature, period_start=period.start,
                quantity=quantity, expires_at=moment + timedelta(seconds=ttl_s), state="held"))
        uow.commit()
    return {"reservation_id": reservation_id, **answer(fit, used, reserved, limit, period)}


def _close(uow: UnitOfWork, tenant_id: str, reservation_id: str, state: str,
           moment: datetime) -> UsageReservation:
    """Move a live reservation to `state` and give back what it held; refused when it is
    unknown, closed or expired (an expired one is released on the way)."""
    held = uow.quotas.reservation(tenant_id, reservation_id)
    if held is None:
        raise UnknownReservation(f"no reservation {reservation_id!r}")
    if held.state == "held" and held.expires_at <= moment:
        release_expired(uow, moment, tenant_id=tenant_id, feature=held.feature)
        uow.commit()
        raise ReservationClosed("expired")
    closed = uow.quotas.finish(tenant_id, reservation_id, state)
    if closed is None:
        raise ReservationClosed(held.state)
    uow.quotas.add(tenant_id, closed.feature, closed.period_start, reserved=-closed.quantity)
    return closed


def commit(tenant_id: str, reservation_id: str, quantity: int | None = None, *, uow_factory: UowFactory,
           now: Clock) -> dict[str, Any]:
    """Record the final quantity (the held one by default) and give the reservation back."""
    moment = now()
    with database_errors_are_transient(), uow_factory() as uow:
        closed = _close(uow, tenant_id, reservation_id, "committed", moment)
        final = closed.quantity if quantity is None else quantity
        limit = feature_limit(uow, tenant_id, closed.feature)
        result = record(uow, tenant_id, closed.feature, final, moment, limit, hard=False, now=moment)
        uow.commit()
    return {"reservation_id": reservation_id, "committed": final, **result}


def release(tenant_id: str, reservation_id: str, *, uow_factory: UowFactory, now: Clock) -> dict[str, Any]:
    """Give the held quantity back, recording nothing."""
    with database_errors_are_transient(), uow_factory() as uow:
        closed = _close(uow, tenant_id, reservation_id, "released", now())
        uow.commit()
    return {"reservation_id": reservation_id, "released": closed.quantity}
