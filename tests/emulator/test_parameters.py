"""Parameters the way Stripe checks them: an unknown one, at any depth and on every route, is 400
`parameter_unknown`; a malformed one is a 400 that names it, never a 500."""
from __future__ import annotations

import re
from urllib.parse import urlencode

import pytest
import stripe

from billing_sync_emulator.router import ROUTES

from .conftest import new_customer

AUTH = {"Authorization": "Bearer sk_test_parameters"}


def call(emulator, method: str, path: str, form: dict | None = None):
    """One request through the emulator's transport-free entry point: (status, body)."""
    encoded = urlencode(form or {})
    if method == "POST":
        status, _, body = emulator.handle(method, path, AUTH, encoded.encode())
    else:
        status, _, body = emulator.handle(method, f"{path}?{encoded}" if encoded else path, AUTH, b"")
    return status, body


def assert_unknown(body: dict, name: str):
    assert body == {"error": {"type": "invalid_request_error", "code": "parameter_unknown",
                              "doc_url": "https://stripe.com/docs/error-codes/parameter-unknown",
                              "message": f"Received unknown parameter: {name}", "param": name}}


PLACEHOLDER = re.compile(r"\(\?P<(\w+)>\[\^/\]\+\)")   # how router.route compiles `{name}`
PATHS = [(method, PLACEHOLDER.sub(r"{\1}", regex.pattern[1:-1])) for method, regex, _ in ROUTES]


@pytest.mark.parametrize("method,path", PATHS, ids=[f"{m} {p}" for m, p in PATHS])
def test_every_route_rejects_an_unknown_top_level_parameter(emulator, method, path):
    path = re.sub(r"\{\w+\}", "x_probe", path)
    status, body = call(emulator, method, path, {"emulator_probe": "1"})
    assert status == 400, body
    assert_unknown(body, "emulator_probe")


def test_routes_cover_the_api(emulator):
    """The parametrized test above sees every route (a guard against an empty ROUTES)."""
    assert len(ROUTES) > 60


@pytest.mark.parametrize("method,path,form,name", [
    ("POST", "/v1/subscriptions", {"customer": "cus_x", "items[0][price]": "price_x", "items[0][quantty]": "2"},
     "items[0][quantty]"),
    ("POST", "/v1/subscriptions", {"customer": "cus_x", "items[0][price]": "price_x",
                                   "items[1][price]": "price_y", "items[1][metadata][k]": "v", "items[1][priec]": "p"},
     "items[1][priec]"),
    ("POST", "/v1/subscriptions/sub_x", {"items[0][id]": "si_x", "items[0][deleetd]": "true"}, "items[0][deleetd]"),
    ("POST", "/v1/subscriptions/sub_x", {"cancellation_details[coment]": "bye"}, "cancellation_details[coment]"),
    ("POST", "/v1/subscriptions", {"customer": "cus_x", "items[0][price]": "p",
                                   "trial_settings[end_behavior][missing_payment_methd]": "pause"},
     "trial_settings[end_behavior][missing_payment_methd]"),
    ("POST", "/v1/prices", {"currency": "usd", "product": "prod_x", "unit_amount": "1",
                            "recurring[intervall]": "month"}, "recurring[intervall]"),
    ("POST", "/v1/prices", {"currency": "usd", "product_data[nmae]": "x", "unit_amount": "1"}, "product_data[nmae]"),
    ("POST", "/v1/products", {"name": "x", "default_price_data[curency]": "usd"}, "default_price_data[curency]"),
    ("POST", "/v1/products", {"name": "x", "marketing_features[0][nam]": "Fast"}, "marketing_features[0][nam]"),
    ("POST", "/v1/customers", {"invoice_settings[default_payment_methd]": "pm_card_visa"},
     "invoice_settings[default_payment_methd]"),
    ("POST", "/v1/customers", {"shipping[address][cty]": "Paris", "shipping[name]": "x"}, "shipping[address][cty]"),
    ("POST", "/v1/billing/meters", {"display_name": "d", "event_name": "e", "default_aggregation[formula]": "sum",
                                    "customer_mapping[typ]": "by_id"}, "customer_mapping[typ]"),
    ("GET", "/v1/customers", {"created[gtt]": "1"}, "created[gtt]"),
    ("GET", "/v1/prices", {"recurring[intrval]": "month"}, "recurring[intrval]"),
])
def test_nested_unknown_parameters_are_rejected_before_anything_happens(emulator, method, path, form, name):
    status, body = call(emulator, method, path, form)
    assert status == 400, body
    assert_unknown(body, name)
    assert emulator.events() == []


def test_nested_unknown_parameter_through_the_sdk(client, emulator, catalog):
    customer = new_customer(client)
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.subscriptions.create(params={"customer": customer.id,
                                               "items": [{"price": catalog["prices"]["starter"].id, "quantty": 2}]})
    assert err.value.http_status == 400 and err.value.code == "parameter_unknown"
    assert err.value.param == "items[0][quantty]"
    assert client.v1.subscriptions.list(params={"customer": customer.id}).data == []


def test_known_nested_parameters_still_pass(client, catalog):
    customer = new_customer(client, address={"city": "Paris", "country": "FR"})
    sub = client.v1.subscriptions.create(params={
        "customer": customer.id, "items": [{"price": catalog["prices"]["starter"].id, "quantity": 2,
                                            "metadata": {"anything": "goes"}}],
        "metadata": {"free": "form"}, "trial_settings": {"end_behavior": {"missing_payment_method": "cancel"}}})
    updated = client.v1.subscriptions.update(sub.id, params={
        "items": [{"id": sub["items"].data[0].id, "quantity": 3}], "cancellation_details": {"comment": "later"}})
    assert updated["items"].data[0].quantity == 3
    assert client.v1.customers.list(params={"created": {"gte": 0, "lt": 2**31}}).data[0].id == customer.id


# -- marketing_features: malformed input is a 400 naming the parameter ---------------------------

@pytest.mark.parametrize("form,message,param,code", [
    ({"marketing_features": "fast"}, "Invalid array", "marketing_features", None),
    ({"marketing_features[name]": "Fast"}, "Invalid array", "marketing_features", None),
    ({"marketing_features[0]": "Fast"}, "Invalid hash", "marketing_features[0]", None),
    ({"marketing_features[0][name][x]": "Fast"}, "Invalid string: {\"x\": \"Fast\"}", "marketing_features[0][name]",
     None),
    ({"marketing_features[0][name]": ""},
     "You passed an empty string for 'marketing_features[0][name]'. We assume empty values are an attempt to unset a "
     "parameter; however 'marketing_features[0][name]' cannot be unset. You should remove "
     "'marketing_features[0][name]' from your request or supply a non-empty value.",
     "marketing_features[0][name]", "parameter_invalid_empty"),
])
@pytest.mark.parametrize("update", [False, True], ids=["create", "update"])
def test_malformed_marketing_features_are_a_400(emulator, form, message, param, code, update):
    path = "/v1/products"
    if update:
        status, product = call(emulator, "POST", path, {"name": "Plan"})
        assert status == 200
        path = f"/v1/products/{product['id']}"
    status, body = call(emulator, "POST", path, {"name": "Plan", **form})
    assert status == 400, body
    error = body["error"]
    assert (error["message"], error["param"], error.get("code")) == (message, param, code)
    assert [p["marketing_features"] for p in emulator.state.all("product")] == ([[]] if update else [])


def test_marketing_features_set_and_cleared(client):
    product = client.v1.products.create(params={"name": "Plan", "marketing_features": [{"name": "Fast"},
                                                                                        {"name": "Safe"}]})
    assert [f.name for f in product.marketing_features] == ["Fast", "Safe"]
    cleared = client.v1.products.update(product.id, params={"marketing_features": ""})
    assert cleared.marketing_features == []
