"""The fake Stripe's self-serve wire methods (Checkout and portal sessions, SetupIntents, invoice
previews with prorations, invoices, payment methods), mixed into `fakes.FakeGateway`. Shapes and
numbers follow the emulator's; tests/emulator/test_billing_gateway_contract.py checks both."""
from __future__ import annotations

import copy
from typing import Any

BRANDS = {"pm_card_visa": ("visa", "4242"), "pm_card_mastercard": ("mastercard", "4444"),
          "pm_card_amex": ("amex", "8431"), "pm_card_chargeCustomerFail": ("visa", "0341"),
          "pm_card_authenticationRequired": ("visa", "3184")}


class SelfServeFakeWire:
    """Needs FakeGateway's state and plumbing (customers, subscriptions, prices, _enter, _write)."""

    @property
    def payment_methods(self) -> dict[str, dict]:
        return self.__dict__.setdefault("_payment_methods", {})

    @property
    def invoice_objects(self) -> dict[str, dict]:
        return self.__dict__.setdefault("_invoices", {})

    @property
    def sessions(self) -> dict[str, dict]:
        return self.__dict__.setdefault("_sessions", {})

    # -- arranging the world --------------------------------------------------------------------

    def add_payment_method(self, token: str = "pm_card_visa", customer: str | None = None) -> dict:
        brand, last4 = BRANDS.get(token, ("visa", "4242"))
        pm = {"id": self.new_id("pm"), "object": "payment_method", "type": "card", "customer": customer,
              "created": self.now_ts(), "livemode": False, "metadata": {},
              "card": {"brand": brand, "last4": last4, "exp_month": 12, "exp_year": 2034}}
        self.payment_methods[pm["id"]] = pm
        return copy.deepcopy(pm)

    def add_invoice(self, sub: dict, *, amount: int | None = None) -> dict:
        item = sub["items"]["data"][0]
        due = amount if amount is not None else (item["price"]["unit_amount"] or 0) * (item["quantity"] or 0)
        if sub["status"] == "trialing":
            due = 0
        # Own numbering: the shared id counter stays as the recorded-requests test expects it.
        sequence = len(self.invoice_objects) + 1
        iid = f"in_fakeinvoice{sequence:06d}"
        paid = sub["status"] != "incomplete"
        invoice = {"id": iid, "object": "invoice", "customer": sub["customer"], "subscription": sub["id"],
                   "number": f"FAKE-{sequence:04d}", "status": "paid" if paid else "open",
                   "amount_due": due, "amount_paid": due if paid else 0,
                   "currency": item["price"]["currency"], "period_start": item["current_period_start"],
                   "period_end": item["current_period_start"], "created": self.now_ts(),
                   "hosted_invoice_url": f"https://invoice.stripe.com/i/fake/{iid}",
                   "invoice_pdf": f"https://pay.stripe.com/invoice/fake/{iid}/pdf", "_seq": sequence}
        if not paid:
            invoice["_client_secret"] = f"pi_fake{sequence:06d}_secret_fake"
        self.invoice_objects[iid] = invoice
        self.subscriptions[sub["id"]]["latest_invoice"] = iid
        return copy.deepcopy(invoice)

    def confirm_first_payment(self, subscription_id: str, token: str = "pm_card_visa") -> dict:
        """What Stripe.js confirming the first invoice's PaymentIntent does (the customer passed
        any 3-D Secure challenge): the invoice paid, the subscription active, the card saved on it
        when `payment_settings[save_default_payment_method]` is `on_subscription`."""
        sub = self.subscriptions[subscription_id]
        invoice = self.invoice_objects[sub["latest_invoice"]]
        pm = self.add_payment_method(token, customer=sub["customer"])
        invoice.update(status="paid", amount_paid=invoice["amount_due"], attempt_count=1)
        sub["status"] = "active"
        if (sub.get("payment_settings") or {}).get("save_default_payment_method") == "on_subscription":
            sub["default_payment_method"] = pm["id"]
        return copy.deepcopy(sub)

    # -- wire methods ---------------------------------------------------------------------------

    def create_checkout_session(self, params: dict, *, idempotency_key: str) -> dict:
        self._enter("create_checkout_session", params, idempotency_key)

        def make() -> dict:
            if params.get("customer") and params["customer"] not in self.customers:
                raise self._not_found(f"customer: '{params['customer']}'")
            sid = f"cs_test_{self.new_id('fake')}"
            session = {"id": sid, "object": "checkout.session", "mode": params["mode"], "status": "open",
                       "customer": params.get("customer"), "client_reference_id": params.get("client_reference_id"),
                       "metadata": dict(params.get("metadata") or {}), "subscription": None,
                       "url": f"https://checkout.stripe.com/c/pay/{sid}", "expires_at": self.now_ts() + 86400,
                       "success_url": params.get("success_url"), "cancel_url": params.get("cancel_url")}
            self.sessions[sid] = session
            return copy.deepcopy(session)

        return self._write("create_checkout_session", idempotency_key, params, make)

    def create_portal_session(self, params: dict, *, idempotency_key: str) -> dict:
        self._enter("create_portal_session", params, idempotency_key)

        def make() -> dict:
            from billing_sync.errors import PermanentError

            if params["customer"] not in self.customers:
                raise self._not_found(f"customer: '{params['customer']}'")
            flow = params.get("flow_data")
            if flow and flow["type"] != "payment_method_update":
                sub = self.subscriptions.get((flow.get(flow["type"]) or {}).get("subscription") or "")
                if sub is None or sub["customer"] != params["customer"] or sub["status"] in self.ENDED:
                    raise PermanentError("No such subscription for this customer", reason="invalid")
            return {"id": self.new_id("bps"), "object": "billing_portal.session", "customer": params["customer"],
                    "url": f"https://billing.stripe.com/p/session/test_{self.new_id('fake')}",
                    "return_url": params.get("return_url"), "flow": copy.deepcopy(flow)}

        return self._write("create_portal_session", idempotency_key, params, make)

    def create_setup_intent(self, params: dict, *, idempotency_key: str) -> dict:
        self._enter("create_setup_intent", params, idempotency_key)

        def make() -> dict:
            seti = self.new_id("seti")
            return {"id": seti, "object": "setup_intent", "customer": params.get("customer"),
                    "client_secret": f"{seti}_secret_fake", "status": "requires_payment_method",
                    "usage": params.get("usage", "off_session"), "metadata": dict(params.get("metadata") or {})}

        return self._write("create_setup_intent", idempotency_key, params, make)

    def create_invoice_preview(self, params: dict) -> dict:
        """The next invoice; with `subscription_details[items]`, prorated as the emulator does."""
        self._enter("create_invoice_preview", params)
        sub = self.subscriptions.get(params.get("subscription") or "")
        if sub is None:
            raise self._not_found(f"subscription: '{params.get('subscription')}'")
        details = params.get("subscription_details") or {}
        if not details.get("items") and sub["cancel_at_period_end"]:
            raise self._not_found(f"upcoming invoice for customer: '{sub['customer']}'")
        item = sub["items"]["data"][0]
        old = ((item["price"]["unit_amount"] or 0), item["quantity"] or 0)
        new = old
        for change in details.get("items", []):
            price = self.prices[change["price"]] if "price" in change else item["price"]
            new = ((price["unit_amount"] or 0), change.get("quantity", item["quantity"] or 0))
        lines: list[dict[str, Any]] = []
        if new != old and sub["status"] in ("active", "past_due"):
            start, end = item["current_period_start"], item["current_period_end"]
            at = details.get("proration_date", self.now_ts())
            share = min(max((end - at) / (end - start), 0.0), 1.0)
            for (unit, qty), sign in ((old, -1), (new, 1)):
                lines.append({"amount": sign * round(unit * qty * share),
                              "parent": {"subscription_item_details": {"proration": True}}})
        lines.append({"amount": new[0] * new[1], "parent": {"subscription_item_details": {"proration": False}}})
        total = sum(line["amount"] for line in lines)
        return {"id": self.new_id("upcoming_in"), "object": "invoice", "status": "draft", "amount_due": total,
                "currency": item["price"]["currency"], "next_payment_attempt": item["current_period_end"],
                "lines": {"object": "list", "data": lines, "has_more": False}}

    def list_invoices_page(self, params: dict) -> dict:
        self._enter("list_invoices_page", params)
        mine = sorted((i for i in self.invoice_objects.values() if i["customer"] == params["customer"]),
                      key=lambda i: (i["created"], i["_seq"]), reverse=True)
        if params.get("starting_after"):
            ids = [i["id"] for i in mine]
            mine = mine[ids.index(params["starting_after"]) + 1:]
        page = mine[:params.get("limit", 10)]
        return {"object": "list", "data": [{k: v for k, v in i.items() if not k.startswith("_")} for i in page],
                "has_more": len(mine) > len(page)}

    def retrieve_subscription_first_payment(self, subscription_id: str) -> dict | None:
        self._enter("retrieve_subscription_first_payment", subscription_id)
        sub = self.subscriptions.get(subscription_id)
        if sub is None or sub.get("deleted"):
            return None
        sub = copy.deepcopy(sub)
        invoice = self.invoice_objects.get(sub.get("latest_invoice") or "")
        if invoice is not None:
            secret = invoice.get("_client_secret")
            sub["latest_invoice"] = {**{k: v for k, v in invoice.items() if not k.startswith("_")},
                                     "confirmation_secret": {"client_secret": secret, "type": "payment_intent"}
                                     if secret else None}
        return sub

    def retrieve_payment_method(self, payment_method_id: str) -> dict | None:
        self._enter("retrieve_payment_method", payment_method_id)
        pm = self.payment_methods.get(payment_method_id)
        return copy.deepcopy(pm) if pm else None
