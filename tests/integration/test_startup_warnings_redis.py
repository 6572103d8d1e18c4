"""Start-up warnings against the real Redis of this machine: its persistence is read with CONFIG
GET, and reported when it has neither AOF nor snapshots."""
from __future__ import annotations

import redis

from billing_sync.config.settings import Settings
from billing_sync.ops.startup_warnings import findings, read_redis_persistence


def test_the_redis_persistence_is_read_and_a_forgetful_one_reported(redis_url):
    client = redis.Redis.from_url(redis_url)
    actual = {name: str(client.config_get(name)[name]) for name in ("appendonly", "save")}
    assert read_redis_persistence(redis_url) == actual
    found = dict(findings("worker", Settings(_env_file=None, broker_url=redis_url)))
    forgetful = actual["appendonly"] != "yes" and not actual["save"].strip()
    assert ("startup.redis_not_persistent" in found) is forgetful
