"""`billing-sync config check`: the effective configuration, secrets masked, and whether it works:
the settings and the catalog are valid, and the database, the broker, the event bus and the
Stripe account answer.

The configuration is listed with where each value came from (`environment`, which includes a
`.env` file, or `default`). Secrets show only their kind (`sk_test_…`, `whsec_…`), never a
character of their own; URLs lose their password.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import SecretStr

from ..config.settings import Settings
from ..config.urls import redact
from .status import FAIL, OK, SKIP, Check, check_broker, check_catalog, check_database, check_event_bus, check_stripe

ExitCodeOf = Callable[[BaseException], int]
CONFIGURATION, REFUSAL = 2, 3
MASK = "****"
SECRET_KINDS = ("sk_test_", "sk_live_", "rk_test_", "rk_live_", "whsec_")


def mask(secret: SecretStr) -> str:
    """The secret's kind and nothing of its own: `sk_live_****`, `whsec_****`, `****`."""
    value = secret.get_secret_value()
    kind = next((prefix for prefix in SECRET_KINDS if value.startswith(prefix)), "")
    return f"{kind}{MASK}"


def _shown(name: str, value: Any) -> Any:
    if isinstance(value, SecretStr):
        return mask(value)
    if isinstance(value, list) and value and all(isinstance(item, SecretStr) for item in value):
        return [mask(item) for item in value]
    if isinstance(value, str) and name.endswith("_url"):
        return redact(value)
    if isinstance(value, list | tuple):
        return [str(item) for item in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return str(value)


def effective_configuration(settings: Settings) -> list[dict[str, Any]]:
    """Every setting: its variable, its value fit to print and where it came from."""
    given = settings.model_fields_set
    return [{"setting": f"BILLING_{name.upper()}", "value": _shown(name, getattr(settings, name)),
             "source": "environment" if name in given else "default"}
            for name in sorted(type(settings).model_fields)]


def _run(name: str, fn: Callable[[], list[Check] | Check], exit_code_of: ExitCodeOf) -> list[tuple[Check, int]]:
    try:
        result = fn()
    except Exception as exc:
        message = str(exc).splitlines()[0][:200] if str(exc) else ""
        return [(Check(name, FAIL, f"{type(exc).__name__}: {message}".rstrip(": "), True), exit_code_of(exc))]
    checks = result if isinstance(result, list) else [result]
    # A check that answered FAIL found the configuration wrong: a database not migrated, a key of
    # another Stripe account than the pinned one (a safety refusal, 3).
    return [(check, (REFUSAL if name == "stripe" else CONFIGURATION) if check.state == FAIL else 0)
            for check in checks if check.essential]


def connectivity(settings: Settings, exit_code_of: ExitCodeOf) -> list[tuple[Check, int]]:
    """The catalog, then each dependency, as `status` checks them (queue depths left out), each
    with the exit code its failure means (`exit_code_of` an exception: 2 configuration, 1 outage)."""
    from ..models import make_engine

    engine = make_engine(settings.database_url)
    try:
        return [*_run("catalog", lambda: check_catalog(settings), exit_code_of),
                *_run("database", lambda: check_database(settings, engine), exit_code_of),
                *_run("broker", lambda: check_broker(settings), exit_code_of),
                *_run("event bus", lambda: check_event_bus(settings), exit_code_of),
                *_run("stripe", lambda: check_stripe(settings, engine), exit_code_of)]
    finally:
        engine.dispose()


def config_document(settings: Settings, checks: list[tuple[Check, int]]) -> dict[str, Any]:
    """`config check --json`; `exit_code` is the command's: the worst failure's (2 before 3 before 1)."""
    codes = {code for _, code in checks if code}
    exit_code = next((code for code in (CONFIGURATION, REFUSAL, 1) if code in codes), 0)
    return {"ok": exit_code == 0, "exit_code": exit_code, "configuration": effective_configuration(settings),
            "checks": [{"name": check.name.strip(), "state": check.state.lower(), "detail": check.detail}
                       for check, _ in checks]}


__all__ = ["FAIL", "OK", "SKIP", "Check", "config_document", "connectivity", "effective_configuration", "mask"]
