"""Operator tools behind the `billing-sync` command line: one-off runs of the scheduler's jobs."""
