"""Service URLs fit to show: in logs, in `billing-sync status`, in an error line."""
from __future__ import annotations

from sqlalchemy.engine import make_url


def redact(url: str) -> str:
    """A URL without its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        if "@" not in url:
            return url
        scheme, _, rest = url.partition("://")
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
