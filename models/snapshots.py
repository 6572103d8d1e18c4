"""Entitlement snapshots (`entitlement_snapshots`): each tenant's current entitlements and
their version, what the read API serves and `billing.entitlements.changed` announces."""
from __future__ import annotations

from sqlalchemy.orm import Session

from .tables import EntitlementSnapshot


class Snapshots:
    """The snapshots, in the unit of work's transaction (nothing here commits)."""

    def __init__(self, session: Session):
        self._session = session

    def get(self, tenant_id: str) -> EntitlementSnapshot | None:
        return self._session.get(EntitlementSnapshot, tenant_id)

    def version(self, tenant_id: str) -> int | None:
        snapshot = self.get(tenant_id)
        return snapshot.version if snapshot else None

    def get_or_new(self, tenant_id: str) -> EntitlementSnapshot:
        """The tenant's snapshot; a new one (not versioned yet) when it has none."""
        snapshot = self.get(tenant_id)
        if snapshot is None:
            snapshot = EntitlementSnapshot(tenant_id=tenant_id)
            self._session.add(snapshot)
        return snapshot
