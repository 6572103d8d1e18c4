"""Customer Portal sessions with deep links, and the controls that play the customer there."""
from __future__ import annotations

import pytest
import stripe

from .conftest import act, new_customer


@pytest.fixture
def subscribed(client, catalog):
    customer = new_customer(client)
    sub = client.v1.subscriptions.create(params={"customer": customer.id,
                                                 "items": [{"price": catalog["prices"]["pro"].id}]})
    return customer, sub


def portal(client, customer, **params):
    return client.v1.billing_portal.sessions.create(params={"customer": customer.id,
                                                            "return_url": "https://app.test/billing", **params})


def test_a_session_without_a_flow(client, subscribed):
    customer, _ = subscribed
    session = portal(client, customer)
    assert session.id.startswith("bps_") and session.object == "billing_portal.session"
    assert session.url.startswith("https://billing.stripe.com/") and session.flow is None
    assert session.return_url == "https://app.test/billing" and session.customer == customer.id


@pytest.mark.parametrize("kind", ["payment_method_update", "subscription_cancel", "subscription_update"])
def test_deep_links(client, subscribed, kind):
    customer, sub = subscribed
    flow_data: dict = {"type": kind}
    if kind != "payment_method_update":
        flow_data[kind] = {"subscription": sub.id}
    session = portal(client, customer, flow_data=flow_data)
    assert session.flow.type == kind
    assert session.flow.after_completion.type == "portal_homepage"
    if kind != "payment_method_update":
        assert session.flow[kind].subscription == sub.id


@pytest.mark.parametrize("flow_data, param", [
    ({"type": "subscription_cancel"}, "flow_data[subscription_cancel][subscription]"),
    ({"type": "subscription_update", "subscription_update": {"subscription": "sub_other"}},
     "flow_data[subscription_update][subscription]"),
    ({"type": "dance"}, "flow_data[type]"),
    ({"type": "payment_method_update", "after_completion": {"type": "redirect"}},
     "flow_data[after_completion][redirect][return_url]"),
])
def test_bad_flows_are_400(client, subscribed, flow_data, param):
    customer, _ = subscribed
    with pytest.raises(stripe.InvalidRequestError) as err:
        portal(client, customer, flow_data=flow_data)
    assert err.value.http_status == 400 and err.value.param == param


def test_updating_the_card_in_the_portal_makes_it_the_default(client, emulator, subscribed):
    customer, _ = subscribed
    session = portal(client, customer, flow_data={"type": "payment_method_update"})
    status, pm = act(emulator, f"/_emulator/billing_portal_sessions/{session.id}/update_payment_method",
                     {"payment_method": "pm_card_mastercard"})
    assert status == 200 and pm["customer"] == customer.id and pm["card"]["brand"] == "mastercard"
    assert client.v1.customers.retrieve(customer.id).invoice_settings.default_payment_method == pm["id"]
    updated = emulator.events("customer.updated")[-1]
    assert updated["data"]["previous_attributes"]["invoice_settings"]["default_payment_method"] != pm["id"]
    assert emulator.events("payment_method.attached")[-1]["data"]["object"]["id"] == pm["id"]
    status, answer = act(emulator, f"/_emulator/billing_portal_sessions/{session.id}/update_payment_method",
                         {"payment_method": "pm_card_chargeDeclined"})
    assert status == 402 and answer["error"]["code"] == "card_declined"


def test_canceling_in_the_portal(client, emulator, subscribed):
    customer, sub = subscribed
    session = portal(client, customer, flow_data={"type": "subscription_cancel",
                                                  "subscription_cancel": {"subscription": sub.id}})
    status, answer = act(emulator, f"/_emulator/billing_portal_sessions/{session.id}/cancel_subscription",
                         {"at_period_end": True})
    assert status == 200 and answer["cancel_at_period_end"] is True and answer["status"] == "active"
    assert emulator.events("customer.subscription.updated")[-1]["data"]["object"]["cancel_at_period_end"] is True
    status, answer = act(emulator, f"/_emulator/billing_portal_sessions/{session.id}/cancel_subscription",
                         {"at_period_end": False})
    assert status == 200 and answer["status"] == "canceled"
    assert emulator.events("customer.subscription.deleted")


def test_canceling_without_a_flow_takes_the_only_live_subscription(client, emulator, subscribed):
    customer, sub = subscribed
    session = portal(client, customer)
    status, answer = act(emulator, f"/_emulator/billing_portal_sessions/{session.id}/cancel_subscription", {})
    assert status == 200 and answer["id"] == sub.id and answer["cancel_at_period_end"] is True
