"""`tenant show | explain`: a tenant's story in time order, and why it has what it has (`ops/tenants.py`)."""
from __future__ import annotations

import sys

import click

from .jobs import refuse_bad_tenant_id
from .options import Since
from .output import emit, fields, json_option, table


@click.group()
def tenant() -> None:
    """One tenant: its timeline and the reasons for its entitlements."""


@tenant.command("show")
@click.argument("tenant_id")
@click.option("--since", type=Since(), default=None, help="Only entries at or after this time (ISO-8601, or 2h, 7d).")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True, help="The newest N entries.")
@json_option
def tenant_show(tenant_id: str, since, limit: int) -> None:
    """Stripe events, commands and outcomes, entitlement versions and dead letters, oldest first."""
    from ..ops.tenants import show

    refuse_bad_tenant_id(tenant_id)
    document, code = show(tenant_id, since=since, limit=limit)

    def human() -> None:
        if not document["found"]:
            click.echo(f"tenant {tenant_id!r}: nothing known")
            return
        click.echo(f"tenant {tenant_id}  (Stripe customer {document['stripe_customer_id'] or '-'})")
        table(document["entries"], ["at", "kind", "id", "summary"], headers=["AT (UTC)", "KIND", "ID", "WHAT"],
              empty="no entries")

    emit(document, human)
    sys.exit(code)


@tenant.command("explain")
@click.argument("tenant_id")
@click.option("--live/--no-live", default=True, show_default=True,
              help="Also read Stripe now and explain what it says (nothing is written).")
@json_option
def tenant_explain(tenant_id: str, live: bool) -> None:
    """Which subscription, price, product metadata, Stripe feature, grace or cancellation rule gave each
    feature and limit; with the live read, what Stripe says now."""
    from ..ops.tenants import explain

    refuse_bad_tenant_id(tenant_id)
    document, code = explain(tenant_id, live=live)
    emit(document, lambda: _print_explanation(document))
    sys.exit(code)


def _print_explanation(document: dict) -> None:
    if not document["found"]:
        click.echo(f"tenant {document['tenant_id']!r}: unknown")
        return
    snapshot = document["snapshot"] or {}
    fields({"tenant": document["tenant_id"], "stripe customer": document["stripe_customer_id"],
            "served (snapshot)": f"v{snapshot['version']} {snapshot['plan']} ({snapshot['status']}), cause "
                                 f"{snapshot['cause']}" if snapshot else None})
    for title, part in (("LOCAL: the rules over the mirror (as last read from Stripe)", document["local"]),
                        ("LIVE READ FROM STRIPE (now; nothing written)", document["live"])):
        if part is None:
            continue
        click.echo(f"\n{title}")
        if "error" in part:
            click.echo(f"  unavailable: {part['error']}")
            continue
        same = part.get("matches_snapshot", part.get("matches_local"))
        other = "the snapshot" if "matches_snapshot" in part else "local"
        click.echo(f"  {part['plan']} ({part['status']}), period end {part['period_end'] or '-'}; "
                   f"{'same as' if same else 'DIFFERS FROM'} {other}")
        table(part["reasons"], ["part", "name", "source", "ref", "detail"],
              headers=["PART", "NAME", "SOURCE", "FROM", "WHY"])


COMMANDS = (tenant,)
