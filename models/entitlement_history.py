"""The entitlement history repository (`uow.entitlement_history`, over `entitlement_versions`)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from .history_tables import EntitlementVersion
from .tables import EntitlementSnapshot


class EntitlementHistory:
    """The versions, in the unit of work's transaction (nothing here commits)."""

    def __init__(self, session: Session):
        self._session = session

    def record(self, snapshot: EntitlementSnapshot, at: datetime) -> EntitlementVersion:
        """Keep the version `snapshot` now holds; call it in the transaction that wrote it, so the
        history has exactly the versions that were committed."""
        row = EntitlementVersion(tenant_id=snapshot.tenant_id, version=snapshot.version, plan=snapshot.plan,
                                 status=snapshot.status, features=list(snapshot.features or []),
                                 limits=dict(snapshot.limits or {}), period_end=snapshot.period_end,
                                 cause=snapshot.cause, created_at=at)
        self._session.add(row)
        return row

    def of_tenant(self, tenant_id: str, *, since: datetime | None = None, limit: int = 100) -> list[EntitlementVersion]:
        """The tenant's newest `limit` versions (written at or after `since`), newest first."""
        query = select(EntitlementVersion).where(EntitlementVersion.tenant_id == tenant_id)
        if since is not None:
            query = query.where(EntitlementVersion.created_at >= since)
        return list(self._session.scalars(query.order_by(EntitlementVersion.version.desc()).limit(limit)))

    def causes_of(self, tenant_id: str, limit: int = 500) -> list[str]:
        """The causes the tenant's newest `limit` versions name (Stripe event ids among them)."""
        return [cause for cause in self._session.scalars(
            select(EntitlementVersion.cause).where(EntitlementVersion.tenant_id == tenant_id)
            .order_by(EntitlementVersion.version.desc()).limit(limit)) if cause]
