"""`billing-sync up`: every role in one process.

With no configuration this is the embedded mode: SQLite under ./var, Dramatiq's in-process
broker, kombu's in-memory event bus, and the bundled Stripe emulator as the BMS with its
webhooks pointed at our own ingress. With URLs configured, the same roles run against
PostgreSQL, Redis/RabbitMQ and real Stripe — handy on a laptop; production runs each role as
its own process (`ingress`, `worker`, `bridge`, `relay`, `scheduler`).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog
import uvicorn

from .bootstrap import bootstrap
from .config.settings import Settings, get_settings
from .handlers.messagebus import Bus
from .models.migrate import upgrade

if TYPE_CHECKING:  # imported when the settings ask for the emulator
    from billing_sync_emulator.server import EmulatorServer

log = structlog.get_logger(__name__)


@dataclass
class Fleet:
    """The roles of one process; `start()` returns once the ingress answers."""

    settings: Settings
    host: str = "127.0.0.1"
    port: int = 0
    threads: int = 4
    # The bus every role runs on: given, or built from `settings` once the emulator (if any) is up.
    bus: Bus | None = None
    emulator: EmulatorServer | None = None
    ingress_url: str = ""
    _stoppers: list = field(default_factory=list)

    def start(self) -> Fleet:
        upgrade(self.settings.database_url)
        if self.settings.uses_emulator:
            self._start_emulator()
        settings = self.settings
        if self.bus is None:
            self.bus = bootstrap(settings)
        bus = self.bus
        from .handlers.account_pin import verify_account

        bus.call(verify_account)
        if self.emulator is not None:
            from .bms.catalog_sync import ensure_catalog

            ensure_catalog(bus.gateway, bus.catalog)

        from .workers.broker import make_broker
        from .workers.worker import InProcessWorkers

        broker = make_broker(settings, bus=bus)
        workers = InProcessWorkers(broker, threads=self.threads).start()
        self._stoppers.append(workers.stop)
        self._start_ingress(bus, broker)
        self._start_background_roles(bus)
        if self.emulator is not None:
            self.emulator.add_webhook_endpoint(f"{self.ingress_url}/webhooks/stripe",
                                               settings.webhook_secrets[0].get_secret_value())
        log.info("fleet.up", ingress=self.ingress_url, emulator=self.emulator.url if self.emulator else None)
        return self

    def _start_emulator(self) -> None:
        from billing_sync_emulator.server import EmulatorServer

        # The bundled emulator's data lives and dies with this process, but the database under
        # ./var stays: the new emulator answers as the account the database is pinned to.
        self.emulator = EmulatorServer(account_id=_pinned_account_in(self.settings.database_url)).start()
        self._stoppers.append(self.emulator.stop)
        # The emulator stands in for Stripe: point the gateway at it for this process.
        self.settings = self.settings.model_copy(update={"stripe_api_base": self.emulator.url})

    def _start_ingress(self, bus: Bus, broker) -> None:
        from .ingress.app import create_app
        from .ingress.server import uvicorn_config

        config = uvicorn_config(create_app(bus, broker=broker), self.host, self.port, log_level="warning")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="ingress", daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("ingress did not start")
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        self.ingress_url = f"http://{self.host}:{port}"

        def stop() -> None:
            server.should_exit = True
            thread.join(5)

        self._stoppers.append(stop)

    def _start_background_roles(self, bus: Bus) -> None:
        from .workers.bridge import Bridge
        from .workers.relay import Relay
        from .workers.scheduler import Scheduler

        for role in (Relay(bus), Bridge(bus), Scheduler(bus)):
            stop_event = threading.Event()
            thread = threading.Thread(target=role.run, kwargs={"stop_event": stop_event},
                                      name=type(role).__name__.lower(), daemon=True)
            thread.start()
            self._stoppers.append(lambda e=stop_event, t=thread: (e.set(), t.join(5)))

    def stop(self) -> None:
        while self._stoppers:
            try:
                self._stoppers.pop()()
            except Exception:  # keep stopping the rest
                log.exception("fleet.stop_failed")

    def __enter__(self) -> Fleet:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _pinned_account_in(database_url: str) -> str | None:
    from .handlers.account_pin import pinned_account
    from .models import make_engine, unit_of_work_factory

    engine = make_engine(database_url)
    try:
        with unit_of_work_factory(engine)() as uow:
            return pinned_account(uow)
    finally:
        engine.dispose()


def run_up(host: str, port: int) -> None:
    from .workers.shutdown import stop_on_signals

    settings = get_settings()
    stop = stop_on_signals(threading.Event(), settings.shutdown_grace_s)
    with Fleet(settings, host=host, port=port) as fleet:
        print(f"billing-sync up: ingress and read API on {fleet.ingress_url}", flush=True)
        if fleet.emulator is not None:
            print(f"billing-sync up: Stripe emulator on {fleet.emulator.url}", flush=True)
        stop.wait()
