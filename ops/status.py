"""`billing-sync status`: is every dependency reachable, and is work flowing?

One line per check. Essential checks — the database (reachable and migrated to head), the
broker, the event bus, Stripe (and its account against the pin) and the plan catalog — make the
command exit 1 when they fail, so it can serve as a deployment gate or a cron alarm. On embedded
defaults the broker, the bus and the emulator live inside a running `billing-sync up`, which this
process cannot see: they are reported as not checked (`skip`), and the command exits 1 rather
than claim they are reachable. The rest is information: queue depths, the bridge's queue, the
outbox backlog and its age, dead letters, the ledger size and the scheduler's cursors.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO, cast

from sqlalchemy import text

from ..config.urls import redact
from ..models import make_engine, unit_of_work_factory, utcnow

OK, FAIL, INFO, SKIP = "ok", "FAIL", "info", "skip"
IN_UP = "lives only inside a running `billing-sync up`; not checked from here"


@dataclass
class Check:
    name: str
    state: str  # ok | FAIL | info
    detail: str
    essential: bool = False

    @property
    def failed(self) -> bool:
        return self.state == FAIL and self.essential

    @property
    def unchecked(self) -> bool:
        return self.state == SKIP and self.essential


def _guard(name: str, essential: bool, fn: Callable[[], list[Check] | Check]) -> list[Check]:
    try:
        result = fn()
    except Exception as exc:
        message = str(exc).splitlines()[0][:160] if str(exc) else ""
        return [Check(name, FAIL, f"{type(exc).__name__}: {message}".rstrip(": "), essential)]
    return result if isinstance(result, list) else [result]


# -- the checks ---------------------------------------------------------------------------------


def check_database(settings, engine) -> Check:
    from alembic.script import ScriptDirectory

    from ..models.migrate import alembic_config

    head = ScriptDirectory.from_config(alembic_config(settings.database_url)).get_current_head()
    with engine.connect() as conn:
        try:
            current = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except Exception:
            current = None
    where = redact(settings.database_url)
    if current is None:
        return Check("database", FAIL, f"{where}: not migrated (run `billing-sync db upgrade`)", True)
    if current != head:
        return Check("database", FAIL, f"{where}: revision {current}, code expects {head} "
                                       "(run `billing-sync db upgrade`)", True)
    return Check("database", OK, f"{where}, revision {current} (head)", True)


def check_broker(settings) -> list[Check]:
    url = settings.broker_url
    if settings.embedded_broker:
        return [Check("broker", SKIP, f"embedded (in-process): {IN_UP}", True)]
    if url.startswith(("redis://", "rediss://")):
        import redis

        client = redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3)
        client.ping()
        return [Check("broker", OK, f"{redact(url)} (Redis)", True),
                *_redis_queue_depths(client, settings.queue_prefix)]
    _kombu_reachable(url)
    return [Check("broker", OK, f"{redact(url)} (RabbitMQ)", True), *_rabbitmq_queue_depths(settings)]


def _redis_queue_depths(client, namespace: str) -> list[Check]:
    """Dramatiq on Redis keeps each queue's messages in a hash `<namespace>:<queue>.msgs` (ready
    and in flight; `<queue>.DQ` holds delayed retries) and its dead letters in `….XQ.msgs`."""
    checks = []
    keys = {key.decode() for key in client.scan_iter(match=f"{namespace}:*.msgs", count=500)}
    queues = sorted(key.removeprefix(f"{namespace}:").removesuffix(".msgs") for key in keys)
    for name in queues:
        if name.endswith(".XQ"):
            continue
        depth = client.hlen(f"{namespace}:{name}.msgs")
        dead = client.hlen(f"{namespace}:{name}.XQ.msgs")
        checks.append(Check(f"  queue {name}", INFO, f"{depth} queued or in flight, {dead} dead-lettered"))
    if not checks:
        checks.append(Check("  queues", INFO, f"no Dramatiq messages stored under {namespace}:"))
    return checks


def _rabbitmq_queue_depths(settings) -> list[Check]:
    """RabbitMQ queue names come from our actors' declarations; a declare reads each depth."""
    try:
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        from ..workers.broker import make_broker

        broker = cast(RabbitmqBroker, make_broker(settings, make_current=False))  # the settings name RabbitMQ
    except Exception as exc:
        return [Check("  queues", INFO, f"depths unavailable ({type(exc).__name__})")]
    checks = []
    try:
        for name in sorted(q for q in broker.get_declared_queues() if not q.endswith((".DQ", ".XQ"))):
            try:
                ready, delayed, dead = broker.get_queue_message_counts(name)
                checks.append(Check(f"  queue {name}", INFO,
                                    f"{ready} ready, {delayed} delayed, {dead} dead-lettered"))
            except Exception as exc:
                checks.append(Check(f"  queue {name}", INFO, f"unavailable ({type(exc).__name__})"))
    finally:
        broker.close()
    return checks


def _kombu_reachable(url: str) -> None:
    from ..config.bus import connect

    with connect(url) as conn:
        conn.ensure_connection(max_retries=0)


def check_event_bus(settings) -> list[Check]:
    from ..config.bus import commands_queue, connect, events_exchange

    url = settings.event_bus_url
    if url.startswith("memory://"):
        return [Check("event bus", SKIP, f"memory:// (in-process): {IN_UP}", True)]
    queue = commands_queue(settings.queue_prefix)
    with connect(url) as conn:
        conn.ensure_connection(max_retries=0)
        names = f"{queue.exchange.name}, {events_exchange(settings.queue_prefix).name}"
        checks = [Check("event bus", OK, f"{redact(url)} ({names})", True)]
        checks.append(_bridge_queue(conn, queue))
    return checks


def _bridge_queue(conn, queue) -> Check:
    """The bridge's queue: bound to the commands exchange, and how many commands wait in it."""
    name = f"  queue {queue.name}"
    unbound = "not bound: commands are dropped until `billing-sync bus declare` or a bridge runs"
    channel = conn.default_channel
    if conn.transport.driver_type == "amqp":
        try:
            _, depth, consumers = queue(channel).queue_declare(passive=True)
        except Exception:
            return Check(name, INFO, unbound)
        return Check(name, INFO, f"bound, {depth} commands waiting, {consumers} consumers")
    # kombu's Redis transport: a binding is a member of the exchange's table; an empty queue
    # is no key at all, so a passive declare cannot tell "bound and empty" from "never declared".
    if queue.name not in {binding[2] for binding in channel.get_table(queue.exchange.name)}:
        return Check(name, INFO, unbound)
    return Check(name, INFO, f"bound, {channel._size(queue.name)} commands waiting")


def check_bookkeeping(engine) -> list[Check]:
    now = utcnow()
    with unit_of_work_factory(engine)() as uow:
        pending = uow.outbox.unpublished_count()
        oldest = uow.outbox.oldest_unpublished_at()
        dead_total, dead_pending = uow.dead_letters.counts()
        ledger = uow.ledger.count()
        # read inside: leaving a unit of work expires its rows
        cursors = [(c.name, c.value, c.updated_at) for c in uow.cursors.all()]
    age = f", oldest {(now - oldest).total_seconds():.1f} s old" if oldest else ""
    checks = [
        Check("outbox", INFO, f"{pending} unpublished{age}"),
        Check("dead letters", INFO, f"{dead_pending} waiting ({dead_total} in total; `billing-sync dlq list`)"),
        Check("ledger", INFO, f"{ledger} processed messages"),
    ]
    for name, value, updated_at in cursors:
        ago = f" ({(now - updated_at).total_seconds():.0f} s ago)" if updated_at else ""
        checks.append(Check(f"cursor {name}", INFO, f"{value}{ago}"))
    if not cursors:
        checks.append(Check("cursors", INFO, "none yet (the scheduler has not run)"))
    return checks


def check_stripe(settings, engine) -> Check:
    if settings.uses_emulator:
        return Check("stripe", SKIP, f"the bundled emulator: {IN_UP}", True)
    from ..bms.gateway import StripeGateway
    from ..handlers.account_pin import pinned_account

    gateway = StripeGateway(settings.stripe_api_key.get_secret_value(), api_base=settings.stripe_api_base)
    account = gateway.stripe_account_id()
    where = settings.stripe_api_base or "api.stripe.com"
    mode = "live" if settings.live_mode else "test"
    try:
        with unit_of_work_factory(engine)() as uow:
            pinned = pinned_account(uow)
    except Exception:  # the database check says what is wrong with it
        pinned = None
    if pinned and pinned != account:
        return Check("stripe", FAIL, f"{where}: the key belongs to {account}, the database is pinned to {pinned} "
                                     "(`billing-sync account show`)", True)
    return Check("stripe", OK, f"{where} ({mode} mode key, account {account}"
                               f"{', pinned' if pinned else ', not pinned yet'})", True)


def check_catalog(settings) -> Check:
    from ..config.catalog import load_catalog

    catalog = load_catalog(settings.catalog)
    return Check("catalog", OK, f"{settings.catalog}: {len(catalog.plans)} plans ({', '.join(sorted(catalog.plans))})",
                 True)


# -- the command --------------------------------------------------------------------------------


def collect_status(settings) -> list[Check]:
    engine = make_engine(settings.database_url, pool_size=settings.database_pool_size,
                         max_overflow=settings.database_max_overflow)
    try:
        checks = _guard("database", True, lambda: check_database(settings, engine))
        if not checks[0].failed:
            checks += _guard("bookkeeping", False, lambda: check_bookkeeping(engine))
        checks += _guard("catalog", True, lambda: check_catalog(settings))
        checks += _guard("broker", True, lambda: check_broker(settings))
        checks += _guard("event bus", True, lambda: check_event_bus(settings))
        checks += _guard("stripe", True, lambda: check_stripe(settings, engine))
    finally:
        engine.dispose()
    return checks


def summarize(checks: list[Check]) -> tuple[str, int]:
    """The last line of the table and the exit code: 1 when something essential is down or unchecked."""
    failed = [check.name for check in checks if check.failed]
    unchecked = [check.name for check in checks if check.unchecked]
    if failed:
        summary = "DOWN: " + ", ".join(failed)
    elif unchecked:
        summary = (f"NOT CHECKED: {', '.join(unchecked)} (embedded defaults: they exist only inside a running "
                   "`billing-sync up`; set BILLING_BROKER_URL and BILLING_STRIPE_API_BASE/KEY to check a fleet)")
    else:
        summary = "all essential services reachable"
    return summary, 1 if failed or unchecked else 0


def status_document(checks: list[Check]) -> dict:
    """`status --json`: every check and the summary, as one document."""
    summary, code = summarize(checks)
    return {"ok": code == 0, "summary": summary,
            "checks": [{"name": check.name.strip(), "state": check.state.lower(), "detail": check.detail,
                        "essential": check.essential} for check in checks]}


def print_status(settings=None, out: TextIO | None = None, as_json: bool = False) -> int:
    """Print the status table (or, `as_json`, one JSON document); exit 1 when something essential is down."""
    from ..config.settings import get_settings

    settings = settings or get_settings()
    out = out or sys.stdout
    checks = collect_status(settings)
    summary, code = summarize(checks)
    if as_json:
        print(json.dumps(status_document(checks), sort_keys=True), file=out)
        return code
    width = max(len(check.name) for check in checks)
    for check in checks:
        print(f"{check.state:<4}  {check.name:<{width}}  {check.detail}", file=out)
    print(f"\n{summary}", file=out)
    return code
