"""The gateway as the billing page's handlers use it: the injected `gateway` (bootstrap's
StripeGateway, the tests' fake) has the billing, self-serve and billing-page ports; the
pipeline's strategies are typed with the first, so the billing page's reads say so here."""
from __future__ import annotations

from typing import Protocol, cast

from ..bms.billing_port import BillingPageGateway
from ..bms.port import BillingGateway
from ..bms.selfserve_port import SelfServeGateway


class BillingPages(BillingGateway, SelfServeGateway, BillingPageGateway, Protocol):
    """The gateway as the billing page uses it."""


def as_pages(gateway: BillingGateway) -> BillingPages:
    """The injected `gateway` (bootstrap's StripeGateway, the tests' fake) has all three ports;
    the pipeline's strategies are typed with the first, so the billing page's reads say so here."""
    return cast(BillingPages, gateway)
