"""`billing-sync catalog sync` puts the catalog's plans into Stripe once, however often it runs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from billing_sync_emulator.server import EmulatorServer

BIN = Path(sys.executable).parent / "billing-sync"


def test_catalog_sync_creates_missing_prices_once(tmp_path):
    with EmulatorServer() as emulator:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("BILLING_")},
               "BILLING_STRIPE_API_BASE": emulator.url, "BILLING_STRIPE_API_KEY": "sk_test_ops",
               "BILLING_DATABASE_URL": f"sqlite:///{tmp_path}/billing.db"}  # holds the account pin
        subprocess.run([str(BIN), "db", "upgrade"], env=env, capture_output=True, check=True)

        def sync() -> list[dict]:
            run = subprocess.run([str(BIN), "catalog", "sync", "--json"], env=env, capture_output=True, text=True,
                                 check=True)
            return json.loads(run.stdout)["prices"]

        first = sync()
        assert [row["plan"] for row in first] == ["enterprise", "pro", "starter"]
        assert {row["plan"]: row["lookup_key"] for row in first}["pro"] == "pro_monthly"
        assert sync() == first  # nothing new the second time
        lookup_keys = {price["lookup_key"] for price in emulator.state.all("price") if price["active"]}
        assert lookup_keys == {"starter_monthly", "pro_monthly", "enterprise_monthly"}
