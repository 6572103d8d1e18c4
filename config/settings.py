"""Settings from BILLING_* environment variables (and a .env file).

With nothing set, every role runs on embedded defaults: SQLite under ./var, an in-process
broker and the bundled Stripe emulator. Setting the URLs moves a role onto PostgreSQL,
Redis or RabbitMQ and real Stripe, so each role can run on its own machine.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from typing import Annotated

CONFIG_DIR = Path(__file__).resolve().parent
DEFAULT_CATALOG = CONFIG_DIR / "catalog.yaml"
EMBEDDED = "embedded"


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BILLING_", env_file=".env", extra="ignore")

    database_url: str = Field("sqlite:///var/billing-sync.db", description="SQLAlchemy URL")
    broker_url: str = Field(EMBEDDED, description="Dramatiq broker: redis://, amqp:// or 'embedded'")
    events_url: str | None = Field(None, description="kombu URL of the event bus; the broker's by default")
    redis_url: str | None = Field(None, description="Redis for the fleet-wide Stripe rate limit when the broker is RabbitMQ")

    stripe_api_key: SecretStr = SecretStr("sk_test_emulator")
    stripe_api_base: str | None = Field(None, description="Emulator or proxy address; None = real Stripe")
    stripe_rate_limit: float = Field(20.0, description="Fleet-wide Stripe requests per second")
    stripe_test_clocks: bool = Field(False, description="Put each new customer on its own test clock")

    webhook_secrets: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=lambda: [SecretStr("whsec_emulator")]
    )
    webhook_tolerance_s: int = 300
    webhook_max_bytes: int = 256 * 1024

    api_tokens: Annotated[list[SecretStr], NoDecode] = Field(default_factory=lambda: [SecretStr("dev-token")])
    catalog: Path = DEFAULT_CATALOG

    queue_prefix: str = Field("billing-sync", description="Namespace for queues and exchanges")
    max_retries: int = 8
    min_backoff_ms: int = 200
    max_backoff_ms: int = 30_000
    heartbeat_timeout_ms: int = 15_000

    sweep_interval_s: int = 600
    catch_up_interval_s: int = 60
    relay_poll_interval_s: float = 0.2

    metrics_port: int | None = Field(
        None, description="Serve Prometheus /metrics on this port in worker, bridge, relay, scheduler; None = off "
        "(the ingress and `up` serve it on their own port)")
    metrics_host: str = Field("0.0.0.0", description="Address for metrics_port: all interfaces, for a remote Prometheus")

    log_format: str = Field("auto", description="json, console or auto (console on a TTY)")
    log_level: str = "INFO"

    @field_validator("webhook_secrets", "api_tokens", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @property
    def embedded_broker(self) -> bool:
        return self.broker_url == EMBEDDED

    @property
    def event_bus_url(self) -> str:
        """kombu URL for billing.commands/billing.events; memory:// next to the embedded broker."""
        if self.events_url:
            return self.events_url
        return "memory://localhost/" if self.embedded_broker else self.broker_url

    @property
    def uses_emulator(self) -> bool:
        return self.stripe_api_base is None and self.stripe_api_key.get_secret_value() == "sk_test_emulator"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
