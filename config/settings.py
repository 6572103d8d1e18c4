"""Settings from BILLING_* environment variables (and a .env file).

With nothing set, every role runs on embedded defaults: SQLite under ./var, an in-process
broker and the bundled Stripe emulator. Setting the URLs moves a role onto PostgreSQL,
Redis or RabbitMQ and real Stripe, so each role can run on its own machine.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict
from typing import Annotated, Literal

from .secret_files import SecretFilesSource

from ..contract.bus_names import DEFAULT_QUEUE_PREFIX

CONFIG_DIR = Path(__file__).resolve().parent
DEFAULT_CATALOG = CONFIG_DIR / "catalog.yaml"
EMBEDDED = "embedded"
EMULATOR_API_KEY = "sk_test_emulator"
# The defaults that make the embedded fleet and the bundled emulator work out of the box; they
# are public, so they must never guard a live Stripe account.
DEFAULT_WEBHOOK_SECRET = "whsec_emulator"
DEFAULT_API_TOKEN = "dev-token"
LIVE_KEY_PREFIXES = ("sk_live_", "rk_live_")
SECRET_KEY_PREFIXES = ("sk_test_", "rk_test_", *LIVE_KEY_PREFIXES)
BROKER_SCHEMES = ("redis", "rediss", "amqp", "amqps")
EVENT_BUS_SCHEMES = (*BROKER_SCHEMES, "memory")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
MIN_BROWSER_TOKEN_SECRET_BYTES = 32


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    # An empty variable counts as unset: a compose file can clear a default (BILLING_STRIPE_API_BASE=).
    model_config = SettingsConfigDict(env_prefix="BILLING_", env_file=".env", extra="ignore", env_ignore_empty=True)

    database_url: str = Field("sqlite:///var/billing-sync.db", description="SQLAlchemy URL")
    database_pool_size: int = Field(
        10, ge=1, description="Connections each process keeps open to PostgreSQL (README: the connection budget)")
    database_max_overflow: int = Field(
        10, ge=0, description="Connections a process may open beyond database_pool_size under load")
    broker_url: str = Field(EMBEDDED, description="Dramatiq broker: redis://, amqp:// or 'embedded'")
    events_url: str | None = Field(None, description="kombu URL of the event bus; the broker's by default")
    redis_url: str | None = Field(None, description="Redis for the fleet-wide Stripe rate limit when the broker is RabbitMQ")

    stripe_api_key: SecretStr = SecretStr(EMULATOR_API_KEY)
    stripe_api_base: str | None = Field(None, description="Emulator or proxy address; None = real Stripe")
    stripe_rate_limit: float = Field(20.0, description="Fleet-wide Stripe requests per second")
    stripe_test_clocks: bool = Field(False, description="Put each new customer on its own test clock")
    # Metering's own share of the Stripe budget (handlers/metering.py): one meter event per
    # tenant, meter and minute, so a few per second carry thousands of usage records.
    stripe_meter_rate_limit: float = Field(5.0, gt=0, description="Fleet-wide meter events per second")
    meter_flush_interval_s: float = Field(
        10.0, gt=0, le=60, description="How often the scheduler asks the workers to send closed windows")
    meter_settle_s: float = Field(
        5.0, ge=0, le=60, description="A minute window is claimed this long after it closed (late commits, skew)")

    webhook_secrets: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=lambda: [SecretStr(DEFAULT_WEBHOOK_SECRET)]
    )
    webhook_tolerance_s: int = 300
    webhook_max_bytes: int = 256 * 1024

    api_tokens: Annotated[list[SecretStr], NoDecode] = Field(default_factory=lambda: [SecretStr(DEFAULT_API_TOKEN)])
    catalog: Path = DEFAULT_CATALOG
    admin_tokens: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, description="Bearer tokens of the admin endpoints (/v1/admin/…); none = those are off")

    # Browser access to one tenant's billing pages (ingress/tenant_tokens.py).
    browser_token_secret: SecretStr | None = Field(
        None, description="HMAC key of the tenant tokens; None = derived from the first BILLING_API_TOKENS token")
    browser_token_ttl_s: int = Field(900, gt=0, le=3600, description="Lifetime of a tenant token (at most 1 h)")
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Origins whose browsers may call the read API (CORS); none by default")
    tenant_sync_per_minute: int = Field(
        10, gt=0, description="POST /v1/tenants/{id}/sync calls per tenant per minute (per ingress), then 429")

    usage_keys_kept_s: int = Field(
        7 * 86_400, gt=0, description="How long a usage idempotency key's answer (and a closed reservation) is "
        "kept; a repeat after that is a new consumption")

    queue_prefix: str = Field(DEFAULT_QUEUE_PREFIX, description="Namespace for queues and exchanges")
    max_retries: int = 8
    min_backoff_ms: int = 200
    max_backoff_ms: int = 30_000
    heartbeat_timeout_ms: int = 15_000

    clock_skew_margin_s: float = Field(
        0.5, ge=0, description="How far the ingress's and the workers' clocks may differ; an event received this "
        "close to a read of its object is read again")

    sweep_interval_s: int = 600
    sweep_max_change_ratio: float = Field(
        0.25, ge=0.0, le=1.0, description="A sweep that would change more than this share of the tenants' "
        "entitlements is refused (reconcile --allow-mass-change overrides)")
    catch_up_interval_s: int = 60
    relay_poll_interval_s: float = 0.2
    shutdown_grace_s: float = Field(
        8.0, gt=0, description="After SIGTERM, a role still blocked on a dead dependency exits this much later")
    command_repair_after_s: float = Field(
        60.0, gt=0, description="A received command with no outcome is sent to the workers again after this")
    # GET /v1/stream (ingress/stream_api.py)
    stream_heartbeat_s: float = Field(15.0, gt=0, le=300, description="Comment line on an idle stream this often")
    stream_retention_s: int = Field(
        86400, gt=0, description="A Last-Event-ID whose next change is older than this gets `reset`, not a replay")
    stream_poll_interval_s: float = Field(
        1.0, gt=0, le=60, description="How often the stream reads new rows without a NOTIFY (SQLite, LISTEN lost)")
    stream_write_timeout_s: float = Field(
        10.0, gt=0, description="A stream client that takes no bytes for this long is disconnected")

    metrics_port: int | None = Field(
        None, description="Serve Prometheus /metrics on this port in worker, bridge, relay, scheduler; None = off "
        "(the ingress and `up` serve it on their own port)")
    metrics_host: str = Field("0.0.0.0", description="Address for metrics_port: all interfaces, for a remote Prometheus")

    log_format: Literal["json", "console", "auto"] = Field("auto", description="json, console or auto (console on a TTY)")
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING, ERROR or CRITICAL (any case)")

    # What each validator below refuses is a mistake seen in practice; its message names the fix.
    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError

        if value.startswith("postgres://"):  # Heroku's and many hosts' spelling; SQLAlchemy 1.4+ refuses it
            raise ValueError("the scheme postgres:// is not supported: write postgresql://")
        try:
            make_url(value).get_dialect()
        except (ArgumentError, NoSuchModuleError, ValueError) as exc:
            raise ValueError(f"not a database URL SQLAlchemy knows ({type(exc).__name__}); "
                             "use postgresql://user:password@host/db or sqlite:///path") from None
        return value

    @field_validator("broker_url")
    @classmethod
    def _broker_url(cls, value: str) -> str:
        if value != EMBEDDED and _scheme(value) not in BROKER_SCHEMES:
            raise ValueError(f"unknown scheme {_scheme(value) or value[:20]!r}: use redis://, amqp:// "
                             f"(or rediss://, amqps://) or {EMBEDDED!r}")
        return value

    @field_validator("events_url", "redis_url")
    @classmethod
    def _bus_url(cls, value: str | None, info) -> str | None:
        allowed = EVENT_BUS_SCHEMES if info.field_name == "events_url" else ("redis", "rediss")
        if value is not None and _scheme(value) not in allowed:
            raise ValueError(f"unknown scheme {_scheme(value) or value[:20]!r}: use "
                             + ", ".join(f"{scheme}://" for scheme in allowed))
        return value

    @field_validator("stripe_api_key")
    @classmethod
    def _stripe_key(cls, value: SecretStr) -> SecretStr:
        key = value.get_secret_value()
        if not key.startswith(SECRET_KEY_PREFIXES):  # a publishable key (pk_…) is the usual mix-up
            kind = "a publishable key (pk_…)" if key.startswith("pk_") else "not a Stripe secret key"
            raise ValueError(f"{kind}: use a secret or restricted key, sk_test_…/sk_live_… or rk_test_…/rk_live_…")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level(cls, value: object) -> object:
        if isinstance(value, str):
            if value.upper() not in LOG_LEVELS:
                raise ValueError(f"unknown level {value[:20]!r}: use one of {', '.join(LOG_LEVELS)}")
            return value.upper()
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # BILLING_X_FILE (config/secret_files.py) ranks with the environment: both set is an error.
        return init_settings, SecretFilesSource(settings_cls), env_settings, dotenv_settings, file_secret_settings

    @field_validator("webhook_secrets", "api_tokens", "admin_tokens", "cors_origins", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("browser_token_secret")
    @classmethod
    def _browser_token_secret_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        """HS256 with a key shorter than its 32-byte hash can be brute-forced offline from one
        token (RFC 7518 3.2; PyJWT warns). Empty means unset: the derived key is used."""
        if value is not None and 0 < len(value.get_secret_value().encode()) < MIN_BROWSER_TOKEN_SECRET_BYTES:
            raise ValueError(f"must be at least {MIN_BROWSER_TOKEN_SECRET_BYTES} bytes (HS256 needs a key as long as "
                             "its hash); e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(32))'")
        return value

    @model_validator(mode="after")
    def _admin_tokens_are_not_service_tokens(self) -> "Settings":
        """An admin token reads every tenant's history: a service that holds a read-API token must
        not hold it too by accident."""
        service = {token.get_secret_value() for token in self.api_tokens}
        if any(token.get_secret_value() in service for token in self.admin_tokens):
            raise ValueError("BILLING_ADMIN_TOKENS must not repeat a token of BILLING_API_TOKENS")
        return self

    @model_validator(mode="after")
    def _no_default_secrets_with_a_live_key(self) -> "Settings":
        """The public defaults work with the emulator; next to a live key they would let anyone
        forge webhooks or read every tenant's entitlements."""
        if not self.live_mode:
            return self
        defaults = []
        if any(s.get_secret_value() == DEFAULT_WEBHOOK_SECRET for s in self.webhook_secrets):
            defaults.append(f"BILLING_WEBHOOK_SECRETS holds the default {DEFAULT_WEBHOOK_SECRET!r} "
                            "(set your Stripe endpoint's signing secret, whsec_…)")
        if any(t.get_secret_value() == DEFAULT_API_TOKEN for t in self.api_tokens):
            defaults.append(f"BILLING_API_TOKENS holds the default {DEFAULT_API_TOKEN!r} "
                            "(set long random tokens of your own)")
        if defaults:
            raise ValueError("BILLING_STRIPE_API_KEY is a live key but " + "; and ".join(defaults))
        return self

    @property
    def live_mode(self) -> bool:
        return self.stripe_api_key.get_secret_value().startswith(LIVE_KEY_PREFIXES)

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
        return self.stripe_api_base is None and self.stripe_api_key.get_secret_value() == EMULATOR_API_KEY


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


def describe_settings_error(exc: ValidationError) -> str:
    """One line for the operator: which BILLING_* setting is wrong and why."""
    parts = []
    for error in exc.errors():
        message = error["msg"].removeprefix("Value error, ")
        name = "BILLING_" + "_".join(str(part) for part in error["loc"][:1]).upper() if error["loc"] else ""
        parts.append(f"{name}: {message}" if name else message)
    return "; ".join(parts)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
