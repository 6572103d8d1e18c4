"""A stateful stand-in for the part of Stripe's v1 API that billing-sync uses (standard library only).

Installed as the top-level package `billing_sync_emulator` (folder `emulator/`); it imports nothing
from billing_sync, so it can ship as a distribution of its own. Start it with
`billing_sync_emulator.server.EmulatorServer(...).start()` or `billing-sync emulator`.
"""
