"""The entitlement rules with their reasons (`explain`): the same answer as `derive` for every case
of the rules' table, a reason for every feature and limit of it, and the rule that decided the
plan named (lookup_key or product metadata, grace, cancellation, free tier)."""
from __future__ import annotations

from datetime import timedelta

import pytest

from billing_sync.handlers.entitlement_rules import ProductInfo, explain

from test_entitlement_rules import CATALOG, GRACE, NOW, STATUS_TABLE, sub


@pytest.mark.parametrize("case, state, plan, status", STATUS_TABLE, ids=[row[0] for row in STATUS_TABLE])
def test_every_feature_and_limit_has_a_reason(case, state, plan, status):
    explained = explain(CATALOG, state, [], {}, NOW)
    ent = explained.entitlements
    assert (ent.plan, ent.status) == (plan, status)
    named = {(r.part, r.name) for r in explained.reasons}
    assert {("feature", f) for f in ent.features} <= named
    assert {("limit", name) for name in ent.limits} <= named
    assert ("status", None) in named and (plan == "free" or ("plan", None) in named)


def sources(explained, part, name=None):
    return [r.source for r in explained.reasons if r.part == part and r.name == name]


def test_the_plan_by_lookup_key_and_the_per_seat_limit():
    explained = explain(CATALOG, sub("active", quantity=3), [], {}, NOW)
    assert sources(explained, "plan") == ["price_lookup_key", "subscription"]
    assert sources(explained, "limit", "seats") == ["per_seat"]
    [seats] = [r for r in explained.reasons if r.part == "limit" and r.name == "seats"]
    assert "x quantity 3" in seats.detail and seats.ref == "price_1"


def test_product_metadata_plan_features_limits_and_stripe_features():
    products = {"prod_x": ProductInfo(metadata={"plan": "pro", "features": "beta", "limit_projects": "70"},
                                      features=("priority_support",))}
    explained = explain(CATALOG, sub("active", lookup_key=None, product="prod_x"), ["early_access"], products, NOW)
    assert explained.entitlements.limits["projects"] == 70
    assert sources(explained, "plan") == ["product_metadata", "subscription"]
    assert sources(explained, "limit", "projects") == ["catalog", "product_metadata"]  # in the order applied
    assert sources(explained, "feature", "beta") == ["product_metadata"]
    assert sources(explained, "feature", "priority_support") == ["product_feature"]
    assert sources(explained, "feature", "early_access") == ["active_entitlement"]


@pytest.mark.parametrize("state, source, words", [
    (sub("past_due", past_due_since=NOW - timedelta(days=1)), "grace", "until the grace"),
    (sub("past_due", past_due_since=NOW - GRACE), "grace", "ended"),
    (sub("active", cancel_at_period_end=True), "cancellation", "until"),
    (sub("active", cancel_at=NOW), "cancellation", "has passed"),
    (sub("canceled"), "free_tier", "status canceled"),
    (sub("active", lookup_key="mystery_monthly"), "free_tier", "mystery_monthly"),
])
def test_the_rule_that_decided_is_named(state, source, words):
    [decided] = [r for r in explain(CATALOG, state, [], {}, NOW).reasons if r.part == "plan"][-1:]
    assert decided.source == source and words in decided.detail


def test_the_chosen_subscription_among_several_says_why():
    older = sub("active", id="sub_old", created=NOW - timedelta(days=90))
    newer = sub("canceled", id="sub_new", created=NOW - timedelta(days=1))
    [status] = [r for r in explain(CATALOG, [newer, older], [], {}, NOW).reasons if r.part == "status"]
    assert status.ref == "sub_old" and "chosen among 2" in status.detail
