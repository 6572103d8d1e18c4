"""The plan catalog: plans, their features and limits, and the usage meters.

Loaded from a YAML file (config/catalog.yaml unless BILLING_CATALOG names another). Stripe
enrichment (product metadata, active entitlements) is applied when entitlements are derived,
not here: the catalog is the product's own statement of what each plan means.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from ..errors import ConfigurationError


class CatalogPrice(BaseModel):
    lookup_key: str
    unit_amount: int
    currency: str = "usd"
    interval: str = "month"


class Plan(BaseModel):
    key: str
    name: str
    price: CatalogPrice | None = None
    features: list[str] = Field(default_factory=list)
    limits: dict[str, int] = Field(default_factory=dict)
    per_seat: dict[str, int] = Field(default_factory=dict)

    @property
    def paid_price(self) -> CatalogPrice:
        """The price of a paid plan (`Catalog.paid_plans`); a free plan has none."""
        if self.price is None:
            raise ValueError(f"plan {self.key!r} is free: it has no price")
        return self.price


class Meter(BaseModel):
    key: str
    event_name: str


class Catalog(BaseModel):
    free_plan: str
    default_plan: str
    past_due_grace_days: int = 7
    plans: dict[str, Plan]
    meters: dict[str, Meter] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _keys_into_entries(cls, data: dict) -> dict:
        for section in ("plans", "meters"):
            for key, entry in (data.get(section) or {}).items():
                entry.setdefault("key", key)
        return data

    @model_validator(mode="after")
    def _known_plans(self) -> Catalog:
        for name in (self.free_plan, self.default_plan):
            if name not in self.plans:
                raise ValueError(f"catalog names unknown plan {name!r}")
        return self

    def plan_for_lookup_key(self, lookup_key: str | None) -> Plan | None:
        if not lookup_key:
            return None
        for plan in self.plans.values():
            if plan.price and plan.price.lookup_key == lookup_key:
                return plan
        return None

    @property
    def free(self) -> Plan:
        return self.plans[self.free_plan]

    @property
    def paid_plans(self) -> list[Plan]:
        return [plan for plan in self.plans.values() if plan.price]


def load_catalog(path: str | Path) -> Catalog:
    """The catalog in `path`. A missing, unreadable, unparsable or invalid file is a
    `ConfigurationError` naming BILLING_CATALOG and what is wrong (the CLI's one line, exit 2)."""
    where = f"BILLING_CATALOG={path}"
    try:
        with open(path, encoding="utf-8") as fh:
            return Catalog.model_validate(yaml.safe_load(fh))
    except OSError as exc:
        raise ConfigurationError(f"{where}: cannot read the catalog ({exc.strerror or type(exc).__name__})") from exc
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{where}: not a YAML file ({type(exc).__name__})") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "the document"
        raise ConfigurationError(f"{where}: {field}: {first['msg']} ({exc.error_count()} problem(s))") from exc


@lru_cache(maxsize=8)
def cached_catalog(path: str) -> Catalog:
    return load_catalog(path)
