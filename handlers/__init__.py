"""The sync's logic: one handler per message family, its dependencies (unit of work, Stripe port,
catalog, clock) injected by the bus (messagebus.py). No broker code here; registry.py routes."""
