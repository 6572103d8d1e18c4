"""Identifiers of the external contract, and the one rule each must follow.

A tenant id is 1–128 characters of ASCII letters, digits and `_ . : -`, starting with a letter or
a digit. The rule is deliberately narrow: a tenant id goes into Stripe search queries
(`metadata['tenant_id']:'…'`), database keys, HTTP headers (the read API's ETag), log lines and
metrics, and this alphabet is safe in all of them without escaping. Every edge (read API,
commands, CLI, actors) validates with `is_tenant_id` or the `TenantId` type, nothing else.
"""
from __future__ import annotations

import re
from typing import Annotated, TypeGuard

from pydantic import StringConstraints

TENANT_ID_MAX_LENGTH = 128  # the width of tenants.id
TENANT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
_TENANT_ID_RE = re.compile(TENANT_ID_PATTERN)

# What every edge says when it refuses a tenant id (API responses, CLI lines, dead letters).
TENANT_ID_RULE = "a tenant id is 1-128 ASCII letters, digits and _ . : -, starting with a letter or a digit"

TenantId = Annotated[str, StringConstraints(min_length=1, max_length=TENANT_ID_MAX_LENGTH, pattern=TENANT_ID_PATTERN)]


def is_tenant_id(value: object) -> TypeGuard[str]:
    """True when `value` is a string that follows the tenant-id rule."""
    return isinstance(value, str) and _TENANT_ID_RE.fullmatch(value) is not None
