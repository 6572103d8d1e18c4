"""Helpers for the ingress tests: signed Stripe events and readers of the broker's queues."""
from __future__ import annotations

import json
import socket

from dramatiq.message import Message

from billing_sync.ingress.signature import sign_header

from hostile_events import valid_event

SECRETS = ["whsec_previous", "whsec_current"]


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stripe_event(event_id: str | None = None, type_: str = "customer.subscription.updated") -> dict:
    return valid_event(type_, event_id)


def signed(body: bytes, secret: str = SECRETS[1], timestamp: int | None = None) -> dict:
    return {"Stripe-Signature": sign_header(body, secret, timestamp), "Content-Type": "application/json"}


class RedisQueue:
    """Reads Dramatiq's Redis layout: list `<ns>:<queue>` of ids, hash `<ns>:<queue>.msgs`."""

    def __init__(self, url: str, prefix: str):
        import redis

        self.client = redis.Redis.from_url(url)
        self.prefix = prefix
        self.queue = f"{prefix}.stripe-events"

    def messages(self) -> list[Message]:
        ids = self.client.lrange(f"{self.prefix}:{self.queue}", 0, -1)
        return [Message.decode(self.client.hget(f"{self.prefix}:{self.queue}.msgs", i)) for i in ids]

    def cleanup(self) -> None:
        for key in self.client.scan_iter(match=f"{self.prefix}:*"):
            self.client.delete(key)
        self.client.close()


class RabbitQueue:
    """Reads (and so drains) a RabbitMQ queue with basic_get; deletes the test's queues after."""

    def __init__(self, url: str, prefix: str):
        self.url = url
        self.queue = f"{prefix}.stripe-events"
        self._seen: list[Message] = []

    def _channel(self):
        import pika

        from billing_sync.workers.broker import pika_url

        connection = pika.BlockingConnection(pika.URLParameters(pika_url(self.url)))
        return connection, connection.channel()

    def messages(self) -> list[Message]:
        import pika

        connection, channel = self._channel()
        try:
            while True:
                try:
                    method, _props, body = channel.basic_get(self.queue, auto_ack=True)
                except pika.exceptions.ChannelClosedByBroker:  # queue never declared: nothing sent
                    break
                if method is None:
                    break
                self._seen.append(Message.decode(body))
        finally:
            connection.close()
        return list(self._seen)

    def cleanup(self) -> None:
        connection, channel = self._channel()
        try:
            for name in (self.queue, f"{self.queue}.DQ", f"{self.queue}.XQ"):
                channel.queue_delete(name)
        finally:
            connection.close()


def body_of(event: dict) -> bytes:
    return json.dumps(event).encode()
