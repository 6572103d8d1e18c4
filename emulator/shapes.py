"""Object templates: Stripe's own example of each type (fixtures.json, copied from
stripe/openapi's fixtures3.json under the MIT licence in fixtures.LICENSE), so every object we
serve has exactly Stripe's top-level keys. Builders deep-copy a template and override what the
emulator models."""
from __future__ import annotations

import copy
import json
from functools import lru_cache
from pathlib import Path

FIXTURES = Path(__file__).with_name("fixtures.json")


@lru_cache(maxsize=1)
def _templates() -> dict:
    return json.loads(FIXTURES.read_text())["resources"]


def template(kind: str) -> dict:
    return copy.deepcopy(_templates()[kind])


def keys_of(kind: str) -> set[str]:
    return set(_templates()[kind])


def deleted(kind: str, object_id: str) -> dict:
    obj = template(f"deleted_{kind}")
    obj["id"] = object_id
    return obj
