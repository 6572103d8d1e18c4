"""Prometheus metrics of the ingress and the actors, in the process's default registry.

Defined once at import, so every part of one process (the ingress, in-process workers, the
relay) shares them and `GET /metrics` shows them together. Processes without the ingress serve
them on `--metrics-port` (`config/metrics_http.py`). Labels are low-cardinality on
purpose: an actor name, an outcome, a failure reason — never an event or tenant id.
"""
from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest

# -- webhook ingress --------------------------------------------------------------------------

WEBHOOKS = Counter(
    "billing_webhooks",
    "Stripe webhook deliveries by outcome "
    "(accepted, bad_signature, invalid_event, too_large, broker_unavailable)",
    ["outcome"],
)
ENQUEUE_SECONDS = Histogram(
    "billing_webhook_enqueue_seconds",
    "Time for the broker to accept a webhook's event (Redis: the write returned; RabbitMQ: confirmed)",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

# -- actors -----------------------------------------------------------------------------------

ACTOR_PROCESSED = Counter("billing_actor_messages_processed", "Messages an actor processed successfully", ["actor"])
ACTOR_RETRIED = Counter("billing_actor_messages_retried", "Failures that were scheduled for a retry", ["actor"])
ACTOR_FAILED = Counter(
    "billing_actor_messages_failed", "Messages that failed for good (dead-lettered)", ["actor", "reason"]
)
ACTOR_SECONDS = Histogram(
    "billing_actor_duration_seconds",
    "Time an actor spent on one message, successful or not",
    ["actor"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)

# -- outbox relay -----------------------------------------------------------------------------

OUTBOX_PUBLISHED = Counter("billing_outbox_published", "Outbox events published on billing.events", ["type"])
# multiprocess_mode only matters under PROMETHEUS_MULTIPROC_DIR (`billing-sync worker
# --metrics-port`): the oldest row's age is a max, and an exited process's value must not linger.
OUTBOX_LAG_SECONDS = Gauge("billing_outbox_lag_seconds", "Age of the oldest unpublished outbox row (0 when none)",
                           multiprocess_mode="livemax")
OUTBOX_PUBLISH_FAILURES = Counter("billing_outbox_publish_failures", "Relay passes that failed to publish")

# -- command bridge ---------------------------------------------------------------------------

BRIDGE_MESSAGES = Counter("billing_bridge_messages", "Messages taken off billing.commands by outcome", ["outcome"])


def render() -> tuple[bytes, str]:
    """The exposition text of every metric of this process, and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
