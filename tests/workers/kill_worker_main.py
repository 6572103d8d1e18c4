"""A worker process for test_worker_kill: the real broker, actors and middleware from BILLING_*
settings, with a stand-in event handler that leaves marker files in a directory and, in
"slow" mode, sleeps long enough to be killed mid-message."""
from __future__ import annotations

import os
import sys
import time
import types
from pathlib import Path

mode, markers = sys.argv[1], Path(sys.argv[2])


def handle_stripe_event(message, ctx):
    event_id = message["event"]["id"]
    (markers / f"{mode}-started-{event_id}").write_text(str(os.getpid()))
    if mode == "slow":
        time.sleep(120)
    (markers / f"{mode}-done-{event_id}").write_text(str(time.time()))
    return "applied"


handlers = types.ModuleType("billing_sync.handlers.event_dispatch")
handlers.handle_stripe_event = handle_stripe_event
sys.modules[handlers.__name__] = handlers

from billing_sync.config.settings import Settings  # noqa: E402
from billing_sync.workers.broker import make_broker  # noqa: E402
from billing_sync.workers.context import set_context  # noqa: E402
from billing_sync.workers.worker import InProcessWorkers  # noqa: E402

set_context(object())  # the stand-in handler needs no Context
workers = InProcessWorkers(make_broker(Settings(_env_file=None)), threads=1, idle_poll_ms=100).start()
(markers / f"{mode}-ready").write_text(str(os.getpid()))
while True:
    time.sleep(1)
