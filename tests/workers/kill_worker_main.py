"""A worker process for test_worker_kill: the real broker, actors and middleware from BILLING_*
settings, with a stand-in event handler that leaves marker files in a directory and, in
"slow" mode, sleeps long enough to be killed mid-message."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from billing_sync.config.settings import Settings
from billing_sync.handlers.messagebus import Bus
from billing_sync.handlers.messages import StripeEventReceived
from billing_sync.models import utcnow
from billing_sync.workers.broker import make_broker
from billing_sync.workers.worker import InProcessWorkers

mode, markers = sys.argv[1], Path(sys.argv[2])


def handle_stripe_event(received: StripeEventReceived) -> str:
    event_id = received.event.id
    (markers / f"{mode}-started-{event_id}").write_text(str(os.getpid()))
    if mode == "slow":
        time.sleep(120)
    (markers / f"{mode}-done-{event_id}").write_text(str(time.time()))
    return "applied"


# The stand-in handler needs no dependencies: a bus of its own with only that route, and what the
# actor parses the event with (the clock and the settings).
settings = Settings(_env_file=None)
bus = Bus({StripeEventReceived: handle_stripe_event}, {"now": utcnow, "settings": settings})
workers = InProcessWorkers(make_broker(settings, bus=bus), threads=1, idle_poll_ms=100).start()
(markers / f"{mode}-ready").write_text(str(os.getpid()))
while True:
    time.sleep(1)
