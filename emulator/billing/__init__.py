"""The subscription lifecycle: periods, invoices, payments, trials, dunning, cancellation.

Everything that happens *because time passed* lives here, driven by `schedule.run_due(store,
clock, until)`: for customers on a test clock when the clock advances, for the others (real
time) before every API request. Transitions are applied one at a time in time order, each at its
own moment, so the objects and events look as if Stripe had been running all along.

Modelled on Stripe's defaults: a subscription's first invoice is charged at creation
(`payment_behavior=allow_incomplete`: a failed first payment leaves it `incomplete`, and after
23 hours `incomplete_expired`); each renewal invoices and charges at once; a failed renewal makes
the subscription `past_due` and is retried on a schedule spread over `faults.dunning_days`; the
last failed retry cancels the subscription ("cancel the subscription" is Stripe's default final
action). `trial_will_end` fires three days before a trial ends; a trial that ends without a
payment method pauses or cancels the subscription instead when its
`trial_settings.end_behavior.missing_payment_method` says so, and a paused subscription is not
billed until it is resumed.

One idea per module: `periods` (period boundaries and a subscription's items), `render` (the
public shape of subscriptions and items), `invoicing` (invoices and their lines), `payments`
(payment attempts and the retry schedule), `lifecycle` (the state changes), `schedule` (what is
due when, applied in order).
"""

ENDED = {"canceled", "incomplete_expired"}
ENTITLED = {"active", "trialing", "past_due"}
DAY = 86400
