"""The one tenant-id rule, and text that the database can always store."""
import pytest

from billing_sync.contract.ids import is_tenant_id
from billing_sync.models.text import db_text


@pytest.mark.parametrize("value", ["t1", "acme", "tenant-1", "org_42", "a.b:c", "0", "x" * 128,
                                   "9f1c2d3e-7a6b-4c5d-8e9f-0a1b2c3d4e5f"])
def test_tenant_ids_that_follow_the_rule(value):
    assert is_tenant_id(value)


@pytest.mark.parametrize("value", ["", "x" * 129, "a b", "it's", 'a"b', "a\\b", "a\x00b", "ab\n", "-lead",
                                   ".hidden", "é", "日本", "a/b", "a\ud800", None, 7, ["t1"]])
def test_tenant_ids_that_break_it(value):
    assert not is_tenant_id(value)


@pytest.mark.parametrize(("value", "limit", "stored"), [
    ("plain", None, "plain"),
    ("a\x00b", None, "ab"),
    ("lone \ud800 surrogate", None, "lone \ufffd surrogate"),
    ("x" * 300, 255, "x" * 255),
    (12, None, "12"),
    (None, 10, None),
])
def test_db_text_makes_any_value_storable(value, limit, stored):
    assert db_text(value, limit) == stored
    if stored is not None:
        stored.encode("utf-8")  # encodable, so PostgreSQL takes it
