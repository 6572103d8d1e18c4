"""The plan catalog's typed access to prices."""
import pytest

from billing_sync.config.catalog import load_catalog
from billing_sync.config.settings import DEFAULT_CATALOG


def test_a_paid_plan_has_its_price_and_a_free_plan_refuses_to_invent_one():
    catalog = load_catalog(DEFAULT_CATALOG)
    assert all(plan.paid_price is plan.price for plan in catalog.paid_plans)
    with pytest.raises(ValueError, match="is free"):
        _ = catalog.free.paid_price
