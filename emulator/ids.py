"""Ids shaped like Stripe's: a type prefix and random base62 characters."""
from __future__ import annotations

import secrets
import string

_ALPHABET = string.ascii_letters + string.digits


def random_part(length: int = 14) -> str:
    """Uniform over all `length`-character base62 strings, from one draw of the system RNG
    (a draw per character costs a syscall each, and ids are made on every event)."""
    number = secrets.randbelow(len(_ALPHABET) ** length)
    chars = []
    for _ in range(length):
        number, digit = divmod(number, len(_ALPHABET))
        chars.append(_ALPHABET[digit])
    return "".join(chars)


def new_id(prefix: str, length: int = 14) -> str:
    return f"{prefix}_{random_part(length)}"


def request_id() -> str:
    return new_id("req", 14)
