"""The entitlement rules (derive): every status rule of the design, as a table of plain values,
plus enrichment and the choice among several subscriptions. No database here."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from billing_sync.config.catalog import load_catalog
from billing_sync.config.settings import DEFAULT_CATALOG
from billing_sync.handlers.entitlement_rules import ItemState, ProductInfo, SubscriptionState, derive

CATALOG = load_catalog(DEFAULT_CATALOG)
NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
PERIOD_END = NOW + timedelta(days=20)
GRACE = timedelta(days=CATALOG.past_due_grace_days)

PRO = ["audit_log", "dashboard", "exports", "sso"]
PRO_LIMITS_3_SEATS = {"api_calls": 500000, "projects": 50, "seats": 3}
FREE = ["dashboard"]
FREE_LIMITS = {"api_calls": 1000, "projects": 1, "seats": 1}


def sub(status="active", lookup_key="pro_monthly", quantity=3, product="prod_pro", **kw) -> SubscriptionState:
    kw.setdefault("current_period_end", PERIOD_END)
    kw.setdefault("created", NOW - timedelta(days=40))
    return SubscriptionState(id=kw.pop("id", "sub_1"), status=status,
                             items=(ItemState("price_1", lookup_key, product, quantity),), **kw)


# (case, subscription, expected plan, expected status)
STATUS_TABLE = [
    ("active", sub("active"), "pro", "active"),
    ("trialing", sub("trialing"), "pro", "trialing"),
    ("past_due just now", sub("past_due", past_due_since=NOW), "pro", "past_due"),
    ("past_due inside grace", sub("past_due", past_due_since=NOW - GRACE + timedelta(minutes=1)), "pro", "past_due"),
    ("past_due grace over", sub("past_due", past_due_since=NOW - GRACE), "free", "past_due"),
    ("past_due without since starts grace now", sub("past_due"), "pro", "past_due"),
    ("canceled", sub("canceled"), "free", "canceled"),
    ("unpaid", sub("unpaid"), "free", "unpaid"),
    ("incomplete", sub("incomplete"), "free", "incomplete"),
    ("incomplete_expired", sub("incomplete_expired"), "free", "incomplete_expired"),
    ("paused", sub("paused"), "free", "paused"),
    ("cancel_at_period_end before the end", sub("active", cancel_at_period_end=True), "pro", "active"),
    ("cancel_at_period_end after the end",
     sub("active", cancel_at_period_end=True, current_period_end=NOW - timedelta(seconds=1)), "free", "active"),
    ("cancel_at in the future", sub("active", cancel_at=NOW + timedelta(days=1)), "pro", "active"),
    ("cancel_at passed", sub("active", cancel_at=NOW), "free", "active"),
    ("no subscription", None, "free", "none"),
    ("unknown price", sub("active", lookup_key="mystery_monthly"), "free", "active"),
]


@pytest.mark.parametrize("case, state, plan, status", STATUS_TABLE, ids=[row[0] for row in STATUS_TABLE])
def test_status_rules(case, state, plan, status):
    ent = derive(CATALOG, state, [], {}, NOW)
    assert (ent.plan, ent.status) == (plan, status)
    if plan == "pro":
        assert ent.features == PRO
        assert ent.limits == PRO_LIMITS_3_SEATS
        assert ent.period_end == state.current_period_end
    else:
        assert ent.features == FREE
        assert ent.limits == FREE_LIMITS
        assert ent.period_end is None


def test_unknown_price_is_logged(caplog):
    import structlog.testing

    with structlog.testing.capture_logs() as logs:
        derive(CATALOG, sub(lookup_key="mystery_monthly"), [], {}, NOW)
    assert any(entry["event"] == "entitlements.unknown_price" for entry in logs)


def test_per_seat_limits_scale_with_quantity():
    ent = derive(CATALOG, sub("active", lookup_key="starter_monthly", quantity=7), [], {}, NOW)
    assert ent.plan == "starter"
    assert ent.limits == {"api_calls": 50000, "projects": 5, "seats": 7}


def test_plan_from_product_metadata_when_price_has_no_lookup_key():
    products = {"prod_x": ProductInfo(metadata={"plan": "enterprise"})}
    ent = derive(CATALOG, sub(lookup_key=None, product="prod_x", quantity=1), [], products, NOW)
    assert ent.plan == "enterprise"
    assert "priority_support" in ent.features


def test_enrichment_from_product_metadata_features_and_stripe_entitlements():
    products = {"prod_pro": ProductInfo(metadata={"features": " beta_ui, webhooks ,", "limit_projects": "75",
                                                  "limit_bad": "lots"},
                                        features=("sandbox",))}
    ent = derive(CATALOG, sub(), ["analytics", ""], products, NOW)
    assert ent.features == sorted(PRO + ["beta_ui", "webhooks", "sandbox", "analytics"])
    # limit_<name> replaces the plan's base limit; per-seat still added; bad values ignored.
    assert ent.limits == {"api_calls": 500000, "projects": 75, "seats": 3}


def test_enrichment_not_applied_on_the_free_tier():
    products = {"prod_pro": ProductInfo(metadata={"features": "beta_ui"}, features=("sandbox",))}
    ent = derive(CATALOG, sub("canceled"), ["analytics"], products, NOW)
    assert ent.features == FREE


def test_metadata_limit_overrides_per_seat_base():
    products = {"prod_pro": ProductInfo(metadata={"limit_seats": "10"})}
    ent = derive(CATALOG, sub(quantity=3), [], products, NOW)
    assert ent.limits["seats"] == 13  # base 10 from metadata + 1 per seat × 3


# Several subscriptions: granting beats not granting; then active > trialing > past_due; then newest.
MULTI_TABLE = [
    ("canceled old + active new", [sub("canceled", id="a", lookup_key="enterprise_monthly"), sub("active", id="b")],
     "pro", "active"),
    ("active beats trialing", [sub("trialing", id="a", lookup_key="enterprise_monthly"), sub("active", id="b")],
     "pro", "active"),
    ("trialing beats past_due", [sub("past_due", id="a", past_due_since=NOW), sub("trialing", id="b",
                                                                                   lookup_key="starter_monthly")],
     "starter", "trialing"),
    ("newest of equals", [sub("active", id="a", lookup_key="starter_monthly", created=NOW - timedelta(days=9)),
                          sub("active", id="b", lookup_key="enterprise_monthly", created=NOW - timedelta(days=1))],
     "enterprise", "active"),
    ("past_due in grace beats canceled", [sub("canceled", id="a", created=NOW),
                                          sub("past_due", id="b", past_due_since=NOW)], "pro", "past_due"),
    ("all dead: newest status", [sub("canceled", id="a", created=NOW - timedelta(days=9)),
                                 sub("unpaid", id="b", created=NOW - timedelta(days=1))], "free", "unpaid"),
    ("unknown price loses to a known one", [sub("active", id="a", lookup_key="zzz", created=NOW),
                                            sub("active", id="b", lookup_key="starter_monthly")], "starter", "active"),
]


@pytest.mark.parametrize("case, states, plan, status", MULTI_TABLE, ids=[row[0] for row in MULTI_TABLE])
def test_best_live_subscription_wins(case, states, plan, status):
    ent = derive(CATALOG, states, [], {}, NOW)
    assert (ent.plan, ent.status) == (plan, status)
    # Order of the input does not matter.
    assert derive(CATALOG, list(reversed(states)), [], {}, NOW) == ent


def test_derive_needs_the_time():
    with pytest.raises(ValueError):
        derive(CATALOG, None, [], {}, None)


def test_the_rules_module_does_no_io():
    """The rules import no database, model, Stripe or broker code and read no clock."""
    import ast
    import inspect

    from billing_sync.handlers import entitlement_rules

    tree = ast.parse(inspect.getsource(entitlement_rules))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add("." * node.level + (node.module or ""))
    forbidden = ("sqlalchemy", "models", "bms", "stripe", "dramatiq", "kombu", "time", "workers")
    assert not [name for name in imported
                if any(part in forbidden for part in name.lstrip(".").split("."))], imported
    attributes = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    assert not attributes & {"now", "utcnow", "today", "session", "execute"}, attributes


def test_the_rules_module_loads_without_the_database_layer():
    """Importing the rules (with their package) pulls in no SQLAlchemy and no models."""
    import subprocess
    import sys

    code = ("import sys; import billing_sync.handlers.entitlement_rules; "
            "print(sorted(m for m in sys.modules if m.startswith(('sqlalchemy', 'billing_sync.models', "
            "'billing_sync.bms', 'stripe'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
