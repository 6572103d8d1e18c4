"""Configuration and process-wide set-up: settings from `BILLING_*` variables (`settings.py`),
JSON logging with secrets scrubbed (`logging.py`), the plan catalog (`catalog.py`, `catalog.yaml`),
the event-bus exchanges and CloudEvents envelope (`bus.py`), metrics, and URL redaction. Nothing
here talks to Stripe or the database."""
