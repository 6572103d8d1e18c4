"""Text the database can always store.

Anything that reaches a column from outside (a message id, a reason, an error's detail) may hold
what PostgreSQL refuses: a NUL character (text cannot contain it), a lone surrogate (not
encodable as UTF-8), or more characters than the column holds. Writing such a value fails the
whole transaction, which is how a poison message loses its dead letter. `db_text` makes any
value storable; use it where untrusted text is written, not in every query.
"""
from __future__ import annotations

from ..contract.text import LONE_SURROGATE, is_storable

__all__ = ["db_text", "is_storable"]


def db_text(value: object, limit: int | None = None) -> str | None:
    """`value` as storable text: NUL removed, lone surrogates replaced by U+FFFD, cut to `limit`.

    None stays None; a non-string is rendered with `str()` first.
    """
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    text = LONE_SURROGATE.sub("\ufffd", text.replace("\x00", ""))
    return text[:limit] if limit is not None else text

