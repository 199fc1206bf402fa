"""Secrets as a type: a password or key that never shows in a ``repr``, a log or an error.

:class:`Secret` wraps the value; only :meth:`Secret.reveal` gives it back, at the one place
a client library needs it. :func:`redact_url` hides the password of a URL
(``redis://user:pw@host`` → ``redis://user:***@host``) for messages that name a server.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

MASK = "***"


class Secret:
    """A secret string; ``str``/``repr`` show ``***``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{MASK}')"

    def __str__(self) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


def redact_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url if "@" not in url else MASK
    if password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:{MASK}@{host}" + (f":{parts.port}" if parts.port is not None else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
