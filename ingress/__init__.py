"""The HTTP edge (ASGI, served by uvicorn): Stripe webhooks, health, metrics and the read API.

`app.py` verifies a webhook's signature (`signature.py`), checks its shape once and enqueues it
durably for the workers, answering fast; it applies nothing itself. `read_api.py` answers quota
checks from the database. `server.py` runs uvicorn with the limits that protect it from slow
clients. The rule: the ingress validates and enqueues; Stripe calls and state changes happen in
the workers."""
