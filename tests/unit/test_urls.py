"""`config.urls.redact`: the URLs status, the relay and `bus declare` show keep no password."""
from __future__ import annotations

import pytest

from billing_sync.config.urls import redact


@pytest.mark.parametrize("url, shown", [
    ("postgresql://billing:s3cret@db:5432/billing", "postgresql://billing:***@db:5432/billing"),
    ("amqp://guest:s3cret@rabbit:5672/billing", "amqp://guest:***@rabbit:5672/billing"),
    ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
    ("redis://cache:6379/0", "redis://cache:6379/0"),
    ("memory://", "memory://"),
    ("sqlite:///var/billing-sync.db", "sqlite:///var/billing-sync.db"),
])
def test_a_shown_url_keeps_everything_but_its_password(url, shown):
    assert redact(url) == shown


def test_a_url_sqlalchemy_cannot_parse_still_loses_its_credentials():
    assert redact("not a url://user:s3cret@host") == "not a url://***@host"
