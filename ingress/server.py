"""`billing-sync ingress`: the ingress and read API on uvicorn, enqueueing on the shared broker."""
from __future__ import annotations

import sys

import uvicorn

from ..config.settings import get_settings


def serve(host: str, port: int) -> None:
    settings = get_settings()
    if settings.embedded_broker:
        # An in-process broker would hold accepted webhooks where no worker can reach them.
        sys.exit(
            "billing-sync ingress needs a shared broker: set BILLING_BROKER_URL to redis://… or amqp://…\n"
            "(with the embedded broker, run `billing-sync up`, which serves the ingress in-process)"
        )
    from ..bootstrap import build_context
    from ..workers.broker import make_broker
    from .app import create_app

    ctx = build_context(settings)
    app = create_app(ctx, broker=make_broker(settings))
    # uvicorn's access log prints method and path only; our own lines carry event id and outcome.
    # log_config=None: uvicorn's loggers propagate to our root handler (JSON, scrubbed) instead
    # of getting uvicorn's own text handlers.
    uvicorn.run(app, host=host, port=port, log_level=settings.log_level.lower(), lifespan="off",
                access_log=False, proxy_headers=True, log_config=None)
