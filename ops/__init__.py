"""Operator tools behind the `billing-sync` command line: one-off runs of the scheduler's jobs
(`jobs`), the dead-letter tools (`dead_letters`) and the status report (`status`)."""
