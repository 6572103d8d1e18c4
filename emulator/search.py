"""Search: Stripe's query language (the subset a sync service needs) and `search_result` pages,
the same way for every searchable resource.

Each resource has its own query fields (Stripe's "supported query fields" lists); `metadata[…]`
works everywhere. A query is clauses joined by AND or by OR (never both), each `field:'value'`
(exact; case-insensitive for email and name) or `field~'value'` (substring), optionally negated
with `-`. Boolean fields match `'true'` / `'false'`. Numeric fields (`created`) also compare:
`created>1700000000`, `<`, `>=`, `<=` (the number quoted or not).
"""
from __future__ import annotations

import re
import time

from .errors import invalid
from .forms import as_int
from .lists import COMPARISONS
from .store import newest_first

# Query fields per resource, as in Stripe's docs (metadata is always allowed).
FIELDS = {
    "customers": {"created", "email", "name", "phone"},
    "subscriptions": {"created", "status"},
    "products": {"active", "created", "description", "name", "shippable", "url"},
    "prices": {"active", "created", "currency", "lookup_key", "product", "type"},
}

SEARCH_PARAMS = {"query", "limit", "page"}   # what every search route accepts

NUMERIC = {"created"}   # compared as numbers; every searchable resource has it
RANGE_OPERATORS = {">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}

_CLAUSE = re.compile(
    r"""\s*(?P<negate>-)?\s*(?:metadata\[(?P<q1>['"])(?P<mkey>.*?)(?P=q1)\]|(?P<field>[a-z_]+))\s*"""
    r"""(?P<op>>=|<=|:|~|>|<)\s*(?:(?P<q2>['"])(?P<value>.*?)(?P=q2)|(?P<number>\d+))\s*""")


def parse_query(query, resource: str):
    """[(negate, field, op, value)] and the connective ("AND"/"OR"); a metadata field is
    `("metadata", key)`."""
    if not isinstance(query, str) or not query.strip():
        raise invalid("Missing required param: query.", param="query", code="parameter_missing")
    parts = re.split(r"\s+(AND|OR)\s+", query.strip())
    clauses, connectives = parts[::2], set(parts[1::2])
    if len(connectives) > 1:
        raise invalid("Search queries cannot mix AND and OR.", param="query")
    parsed = []
    for text in clauses:
        found = _CLAUSE.fullmatch(text)
        if not found:
            raise invalid(f"We were unable to parse your search query. Try again after removing '{text}'.",
                          param="query")
        field = ("metadata", found["mkey"]) if found["mkey"] is not None else found["field"]
        if isinstance(field, str) and field not in FIELDS[resource]:
            raise invalid(f"Field '{field}' is an unsupported search field for resource `{resource}`.",
                          param="query")
        value, op = found["value"] if found["q2"] else found["number"], found["op"]
        numeric = field in NUMERIC
        if (op in RANGE_OPERATORS or found["number"] is not None) and not numeric:
            raise invalid(f"We were unable to parse your search query. Only numeric fields such as `created` can be "
                          f"compared with `{op}` or given an unquoted number: '{text.strip()}'.", param="query")
        if numeric and op != "~" and not value.isdigit():
            raise invalid(f"We were unable to parse your search query. `{field}` takes an integer timestamp: "
                          f"'{text.strip()}'.", param="query")
        parsed.append((bool(found["negate"]), field, op, value))
    return parsed, (connectives.pop() if connectives else "AND")


def _matches(obj: dict, clause) -> bool:
    negate, field, op, value = clause
    actual = obj["metadata"].get(field[1]) if isinstance(field, tuple) else obj.get(field)
    if isinstance(actual, bool):
        actual = str(actual).lower()
    if actual is None:
        hit = False
    elif op in RANGE_OPERATORS:
        hit = COMPARISONS[RANGE_OPERATORS[op]](int(actual), int(value))
    elif op == "~":
        hit = value.lower() in str(actual).lower()
    else:
        hit = str(actual).lower() == value.lower() if field in ("email", "name") else str(actual) == value
    return hit != negate


def search(store, objs, params: dict, resource: str) -> dict:
    """`GET /v1/{resource}/search` over `objs`: a `search_result` page driven by an opaque `page`
    token. With the `search_lag_s` knob, objects younger than the lag are not found yet, as with
    Stripe's search index (whose docs warn that new data can take up to a minute to appear)."""
    clauses, connective = parse_query(params.get("query"), resource)
    combine = all if connective == "AND" else any
    hits = [o for o in objs if combine(_matches(o, c) for c in clauses)]
    lag = store.faults.search_lag_s if store.faults else 0
    if lag:
        cutoff = time.monotonic() - lag
        hits = [o for o in hits if o["_added_at"] <= cutoff]

    limit = as_int(params.get("limit", 10), "limit", minimum=1, maximum=100)
    offset = 0
    if params.get("page"):
        try:
            offset = int(str(params["page"]).removeprefix("page_"))
        except ValueError:
            raise invalid("Invalid page token.", param="page") from None
    ordered = newest_first(hits)
    chunk = ordered[offset:offset + limit]
    has_more = len(ordered) > offset + limit
    return {"object": "search_result", "data": [store.render(o) for o in chunk], "has_more": has_more,
            "next_page": f"page_{offset + limit}" if has_more else None, "url": f"/v1/{resource}/search"}
