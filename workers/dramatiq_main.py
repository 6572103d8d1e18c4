"""`python -m billing_sync.workers.dramatiq_main <dramatiq arguments>`: Dramatiq's CLI, logging
through our pipeline (`config/logging.py`).

Dramatiq's CLI would give its main process and each worker process a text format of its own
(`logging.basicConfig`); `run_worker` passes `--skip-logging`, so logging is left to us: set up
here for the main process, and again by `worker.boot()` in each worker process, where
`sys.stderr` is the pipe the main process copies to its own output.
"""
from __future__ import annotations

import sys

from dramatiq.cli import main

from ..config.logging import configure_logging
from ..config.settings import get_settings
from .shutdown import die_with_parent

if __name__ == "__main__":
    die_with_parent()  # `billing-sync worker` SIGKILLed: this process goes too, its workers with it
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    sys.exit(main())
