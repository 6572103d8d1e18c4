"""Text a command may carry: what a database column and a JSON encoder downstream can store."""
from __future__ import annotations

import re

# Lone surrogates (U+D800–U+DFFF) can only exist in a Python str; UTF-8 cannot encode them.
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def is_storable(text: str) -> bool:
    """True when `text` holds no NUL and no lone surrogate (any length)."""
    return "\x00" not in text and LONE_SURROGATE.search(text) is None
