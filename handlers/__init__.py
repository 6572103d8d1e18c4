"""The sync's logic: one handler per message family, given the message and a Context
(unit of work, Stripe gateway, catalog). No broker code here; see registry.py for the routing."""
