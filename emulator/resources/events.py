"""Events: list (newest first; `type` with a `*` wildcard, `types[]`, `created` ranges) and retrieve."""
from __future__ import annotations

import fnmatch

from ..errors import invalid
from ..forms import as_str_list
from ..lists import CREATED, PAGE_PARAMS, created_filter, page
from ..router import Request, route


@route("GET", "/v1/events", params={"type", "types", "delivery_success", *CREATED, *PAGE_PARAMS})
def list_(req: Request):
    objs = req.store.all("event")
    if "type" in req.params and "types" in req.params:
        raise invalid("You may only specify one of these parameters: type, types.", param="type")
    if "type" in req.params:
        pattern = req.params["type"]
        objs = [e for e in objs if fnmatch.fnmatchcase(e["type"], pattern)]
    if "types" in req.params:
        types = set(as_str_list(req.params["types"], "types"))
        if len(types) > 20:
            raise invalid("You may only specify up to 20 types.", param="types")
        objs = [e for e in objs if e["type"] in types]
    objs = created_filter(objs, req.params)
    return page(req.store, objs, req.params, "/v1/events", "event")


@route("GET", "/v1/events/{event_id}")
def retrieve(req: Request, event_id: str):
    return req.store.render(req.store.require("event", event_id))
