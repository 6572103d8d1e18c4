"""The processes that move messages: Dramatiq actors and their broker, the command bridge (bus →
actors), the outbox relay (database → bus), the scheduler and its leader election, and the worker
process management.

The rule: workers decode a message and hand it to the handlers; the logic (what a command or a
Stripe event changes) lives in handlers/, not here."""
