"""`/_emulator/…` controls that are not Stripe's: health, fault knobs, reset, a state dump,
webhook deliveries and endpoints, waiting for test clocks. (Controls that play the customer, such
as completing a Checkout Session, are routes of their resource modules, served like API calls.)"""
from __future__ import annotations

import json
from urllib.parse import parse_qsl


def control(emulator, method: str, path: str, query: str, body: bytes) -> tuple[int, dict, dict]:
    """The operator's controls: health, faults, reset, state, deliveries, webhook endpoints, clocks."""
    args = dict(parse_qsl(query))
    data = json.loads(body or b"{}") if method == "POST" else {}
    try:
        if path == "/_emulator/health":
            return 200, {}, {"ok": True}
        if path == "/_emulator/faults":
            if method == "POST":
                emulator.faults.update(data)
            return 200, {}, emulator.faults.public()
        if path == "/_emulator/reset" and method == "POST":
            emulator.reset()
            return 200, {}, {"ok": True}
        if path == "/_emulator/state":
            with emulator.state.lock:
                counts = {kind: len(objs) for kind, objs in emulator.state.objects.items()}
                dump = ({kind: [emulator.state.render(o) for o in objs.values()]
                         for kind, objs in emulator.state.objects.items()} if args.get("full") else None)
            return 200, {}, {"counts": counts, "objects": dump, "pending_deliveries": emulator.dispatcher.pending()}
        if path == "/_emulator/deliveries":
            return 200, {}, {"pending": emulator.dispatcher.pending(), "attempts": emulator.deliveries}
        if path == "/_emulator/deliveries/wait":
            return 200, {}, {"idle": emulator.wait_for_deliveries_idle(float(args.get("timeout", 10)))}
        if path == "/_emulator/webhook_endpoints" and method == "POST":
            events = data.get("enabled_events", ["*"])
            return 200, {}, emulator.add_webhook_endpoint(data["url"], data["secret"], events)
        if path.startswith("/_emulator/test_clocks/") and path.endswith("/wait"):
            clock_id = path.split("/")[3]
            return 200, {}, {"ready": emulator.wait_for_clock(clock_id, float(args.get("timeout", 10)))}
    except (ValueError, KeyError) as exc:
        return 400, {}, {"error": {"type": "invalid_request_error", "message": str(exc)}}
    return 404, {}, {"error": {"type": "invalid_request_error", "message": f"No emulator control at {path}"}}
