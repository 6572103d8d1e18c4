"""`send TYPE TENANT '{json}'`: publish a product command on billing.commands, as a product service
would (`client.py`), and print its outcome (`ops/commands.py`)."""
from __future__ import annotations

import json
import sys

import click

from ..errors import ConfigurationError
from .jobs import refuse_bad_tenant_id
from .output import emit, json_option


@click.command()
@click.argument("command_type", metavar="TYPE")
@click.argument("tenant_id", metavar="TENANT")
@click.argument("data", default="{}", metavar="'{JSON}'")
@click.option("--id", "command_id", default=None, help="The command id (its idempotency key); a new UUID by default.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0), default=30.0, show_default=True,
              help="Seconds to wait for the outcome.")
@json_option
def send(command_type: str, tenant_id: str, data: str, command_id: str | None, timeout_s: float) -> None:
    """Publish a command (e.g. subscription.change acme '{"plan": "pro"}') and wait for its outcome."""
    from ..bootstrap import bootstrap
    from ..client import CommandPublisher, Unroutable
    from ..config.settings import get_settings
    from ..errors import InvalidMessage, SafetyRefusal
    from ..ops.commands import send as send_command

    refuse_bad_tenant_id(tenant_id)
    try:
        payload = json.loads(data)
    except ValueError as exc:
        raise ConfigurationError(f"the command's data is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise ConfigurationError("the command's data must be a JSON object")
    settings = get_settings()
    if settings.embedded_broker and not settings.events_url:
        raise ConfigurationError("send needs the deployment's event bus (BILLING_EVENTS_URL or BILLING_BROKER_URL); "
                                 "on embedded defaults it lives inside `billing-sync up`")

    with CommandPublisher(settings.event_bus_url, source="billing-sync-cli",
                          queue_prefix=settings.queue_prefix) as publisher:
        def publish(type_: str, tenant: str, body: dict, id_: str | None) -> str:
            try:
                return publisher.publish(type_, tenant, body, id=id_)
            except InvalidMessage as exc:  # refused before it was sent, as billing-sync would refuse it
                raise ConfigurationError(f"invalid command: {exc}") from exc
            except Unroutable as exc:  # no bridge queue bound: it would vanish
                raise SafetyRefusal(str(exc)) from exc

        document, code = send_command(command_type, tenant_id, payload, publish=publish, bus=bootstrap(settings),
                                      command_id=command_id, timeout_s=timeout_s)
    emit(document)
    sys.exit(code)


COMMANDS = (send,)
