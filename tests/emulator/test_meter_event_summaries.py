"""Meter event summaries (GET /v1/billing/meters/{id}/event_summaries): the meter's aggregation
over [start_time, end_time) per customer, grouped by hour or day, paged, validated as Stripe does;
and a duplicate meter-event identifier refused with Stripe's 400."""
from __future__ import annotations

import pytest
import stripe

from .conftest import new_customer

HOUR, DAY = 3600, 86400
T0 = 1_767_225_600   # 2026-01-01T00:00:00Z, on a day boundary


@pytest.fixture
def clock(client):
    return client.v1.test_helpers.test_clocks.create(params={"frozen_time": T0 + 2 * DAY})


def meter(client, formula="sum", event_name="api_calls", **extra):
    return client.v1.billing.meters.create(params={"display_name": event_name, "event_name": event_name,
                                                   "default_aggregation": {"formula": formula}, **extra})


def send(client, customer_id, timestamp, value=None, event_name="api_calls", key="stripe_customer_id"):
    payload = {key: customer_id, **({"value": str(value)} if value is not None else {})}
    client.v1.billing.meter_events.create(params={"event_name": event_name, "timestamp": timestamp,
                                                  "payload": payload})


def summaries(client, meter_id, customer_id, start, end, **params):
    return client.v1.billing.meters.event_summaries.list(
        meter_id, params={"customer": customer_id, "start_time": start, "end_time": end, **params})


@pytest.mark.parametrize(("formula", "expected"), [("sum", 10 + 20 + 5), ("count", 3), ("last", 5)])
def test_summary_aggregates_with_the_meter_formula(client, clock, formula, expected):
    m = meter(client, formula)
    customer, other = (new_customer(client, test_clock=clock.id) for _ in range(2))
    send(client, customer.id, T0 + 10, 10)
    send(client, customer.id, T0 + 20, 20)
    send(client, customer.id, T0 + 30, 5)
    send(client, other.id, T0 + 40, 1000)                 # another customer
    send(client, customer.id, T0 + DAY, 7000)             # at end_time: excluded
    listed = summaries(client, m.id, customer.id, T0, T0 + DAY)
    assert [s.aggregated_value for s in listed.data] == [expected]
    s = listed.data[0]
    assert (s.object, s.meter, s.start_time, s.end_time, s.livemode) == \
        ("billing.meter_event_summary", m.id, T0, T0 + DAY, False)
    assert s.id.startswith("mtrusg_") and listed.has_more is False
    assert listed.url == f"/v1/billing/meters/{m.id}/event_summaries"


def test_summary_uses_the_meters_customer_mapping_key(client, clock):
    m = meter(client, customer_mapping={"event_payload_key": "tenant", "type": "by_id"})
    customer = new_customer(client, test_clock=clock.id)
    send(client, customer.id, T0 + 5, 4, key="tenant")
    send(client, customer.id, T0 + 6, 6, key="tenant")
    assert summaries(client, m.id, customer.id, T0, T0 + HOUR).data[0].aggregated_value == 10


def test_grouping_by_hour_and_day_newest_first_with_pages(client, clock):
    m = meter(client)
    customer = new_customer(client, test_clock=clock.id)
    send(client, customer.id, T0 + 5, 1)
    send(client, customer.id, T0 + HOUR + 5, 2)
    send(client, customer.id, T0 + 2 * HOUR + 5, 3)
    send(client, customer.id, T0 + DAY + 5, 40)
    hourly = summaries(client, m.id, customer.id, T0, T0 + 3 * HOUR, value_grouping_window="hour")
    assert [(s.start_time, s.end_time, s.aggregated_value) for s in hourly.data] == [
        (T0 + 2 * HOUR, T0 + 3 * HOUR, 3), (T0 + HOUR, T0 + 2 * HOUR, 2), (T0, T0 + HOUR, 1)]
    daily = summaries(client, m.id, customer.id, T0, T0 + 2 * DAY, value_grouping_window="day")
    assert [s.aggregated_value for s in daily.data] == [40, 6]

    first = summaries(client, m.id, customer.id, T0, T0 + 3 * HOUR, value_grouping_window="hour", limit=2)
    assert [s.aggregated_value for s in first.data] == [3, 2] and first.has_more
    rest = summaries(client, m.id, customer.id, T0, T0 + 3 * HOUR, value_grouping_window="hour",
                     starting_after=first.data[-1].id)
    assert [s.aggregated_value for s in rest.data] == [1] and not rest.has_more
    back = summaries(client, m.id, customer.id, T0, T0 + 3 * HOUR, value_grouping_window="hour",
                     ending_before=rest.data[0].id)
    assert [s.id for s in back.data] == [s.id for s in first.data]
    every = [s.aggregated_value for s in summaries(client, m.id, customer.id, T0, T0 + 3 * HOUR,
                                                   value_grouping_window="hour").auto_paging_iter()]
    assert every == [3, 2, 1]


def test_no_usage_is_a_zero_summary(client, clock):
    m = meter(client)
    customer = new_customer(client, test_clock=clock.id)
    assert [s.aggregated_value for s in summaries(client, m.id, customer.id, T0, T0 + 60).data] == [0]


@pytest.mark.parametrize(("params", "param"), [
    ({"customer": None}, "customer"),
    ({"start_time": None}, "start_time"),
    ({"end_time": None}, "end_time"),
    ({"start_time": T0 + 30}, "start_time"),                                   # not on a minute
    ({"end_time": T0 + HOUR + 60, "value_grouping_window": "hour"}, "end_time"),
    ({"start_time": T0 + HOUR, "value_grouping_window": "day"}, "start_time"),
    ({"value_grouping_window": "week"}, "value_grouping_window"),
    ({"end_time": T0}, "end_time"),                                           # empty range
    ({"start_time": "soon"}, "start_time"),
    ({"limit": 0}, "limit"),
    ({"starting_after": "mtrusg_nope"}, "starting_after"),
    ({"group_by": "tenant"}, "group_by"),                                      # unknown parameter
])
def test_bad_parameters_are_stripes_400(client, clock, params, param):
    m = meter(client)
    customer = new_customer(client, test_clock=clock.id)
    query = {"customer": customer.id, "start_time": T0, "end_time": T0 + DAY, **params}
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.billing.meters.event_summaries.list(m.id, params={k: v for k, v in query.items() if v is not None})
    assert err.value.http_status == 400 and err.value.param == param


def test_unknown_meter_is_a_404(client):
    with pytest.raises(stripe.InvalidRequestError) as err:
        summaries(client, "mtr_missing", "cus_x", T0, T0 + 60)
    assert err.value.http_status == 404 and err.value.code == "resource_missing"


def test_duplicate_identifier_is_refused_and_not_counted(client, clock):
    m = meter(client)
    customer = new_customer(client, test_clock=clock.id)
    params = {"event_name": "api_calls", "identifier": "window-1", "timestamp": T0 + 5,
              "payload": {"stripe_customer_id": customer.id, "value": "25"}}
    client.v1.billing.meter_events.create(params=params)
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.billing.meter_events.create(params={**params, "payload": {**params["payload"], "value": "99"}})
    assert err.value.http_status == 400 and err.value.param == "identifier"
    assert err.value.error.type == "invalid_request_error"
    assert err.value.user_message == "An event already exists with identifier window-1."
    assert summaries(client, m.id, customer.id, T0, T0 + HOUR).data[0].aggregated_value == 25
