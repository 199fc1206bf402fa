"""The one factory of driftline's Redis clients: URL, ACL user and password, TLS.

A :class:`RedisConnection` says where Redis is (``redis://`` or, with TLS, ``rediss://``),
who driftline is there (an ACL ``username`` and a ``password`` kept as a
:class:`~streams.secret.Secret`; both may also sit in the URL) and which certificates to
trust or present (``ca_file``; ``cert_file`` + ``key_file`` for mutual TLS). Every process
— worker, evaluator, CLI — builds its clients with :func:`connect_redis`, so a setting
works everywhere or nowhere. :attr:`RedisConnection.safe_url` is what messages show.

Redis Cluster: ``cluster=True`` (``--redis-cluster``) makes a ``redis.RedisCluster`` from a
node's URL. Every atomic write touches one slot: a partition's checkpoint keys share the
hash tag ``{P:T:p<n>}``, a model's alert state, fence and compacted records share
``{P:<model>}``; everything else is single-key or a non-transactional pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import redis

from sketches.errors import ConfigError
from streams.secret import Secret, redact_url

_SCHEMES = ("redis", "rediss", "unix")


@dataclass(frozen=True, slots=True)
class RedisConnection:
    url: str
    username: str | None = None
    password: Secret | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    cluster: bool = False

    def __post_init__(self) -> None:
        scheme = self.url.partition("://")[0].lower()
        if "://" not in self.url or scheme not in _SCHEMES:
            raise ConfigError(f"--redis-url {self.safe_url!r}: expected redis://, rediss:// "
                              "(TLS) or unix://")
        tls_files = {"--redis-ca-file": self.ca_file, "--redis-cert-file": self.cert_file,
                     "--redis-key-file": self.key_file}
        given = [flag for flag, path in tls_files.items() if path]
        if given and scheme != "rediss":
            raise ConfigError(f"{', '.join(given)} need a TLS URL: rediss://… "
                              f"(got {self.safe_url})")
        for flag in given:
            if not Path(str(tls_files[flag])).is_file():
                raise ConfigError(f"{flag} {tls_files[flag]}: no such file")
        if bool(self.cert_file) != bool(self.key_file):
            raise ConfigError("--redis-cert-file and --redis-key-file go together (mutual TLS)")

    @property
    def tls(self) -> bool:
        return self.url.lower().startswith("rediss://")

    @property
    def safe_url(self) -> str:
        return redact_url(self.url)

    def __repr__(self) -> str:
        return (f"RedisConnection({self.safe_url!r}, username={self.username!r}, "
                f"password={'***' if self.password else None}, ca_file={self.ca_file!r}, "
                f"cert_file={self.cert_file!r}, cluster={self.cluster})")

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``redis.Redis.from_url`` besides the URL."""
        kw: dict[str, Any] = {}
        if self.username:
            kw["username"] = self.username
        if self.password:
            kw["password"] = self.password.reveal()
        if self.tls:
            kw["ssl_cert_reqs"] = "required"
            if self.ca_file:
                kw["ssl_ca_certs"] = self.ca_file
            if self.cert_file:
                kw["ssl_certfile"] = self.cert_file
                kw["ssl_keyfile"] = self.key_file
        return kw


def connect_redis(conn: RedisConnection | str, **options: Any) -> redis.Redis:
    """A Redis client for ``conn`` (``options``: redis-py timeouts etc.). Lazy: nothing is
    sent until the first command."""
    if isinstance(conn, str):
        conn = RedisConnection(conn)
    try:
        if conn.cluster:  # discovers the nodes at once (not lazy)
            options.pop("health_check_interval", None)
            try:
                # the same client interface for every caller (redis-py has no common base)
                return cast(redis.Redis, redis.RedisCluster.from_url(
                    conn.url, **conn.client_kwargs(), **options))
            except (redis.exceptions.RedisError, redis.exceptions.RedisClusterException) as exc:
                raise ConfigError(f"--redis-cluster: cannot reach the Redis Cluster at "
                                  f"{conn.safe_url}: {_scrub(str(exc), conn)}") from None
        return redis.Redis.from_url(conn.url, **conn.client_kwargs(), **options)
    except ValueError as exc:  # a malformed URL; never echo it with its password
        raise ConfigError(f"--redis-url {conn.safe_url!r}: {_scrub(str(exc), conn)}") from None


def _scrub(message: str, conn: RedisConnection) -> str:
    """``message`` without the URL's or the connection's password."""
    for secret in (_url_password(conn.url), conn.password.reveal() if conn.password else None):
        if secret:
            message = message.replace(secret, "***")
    return message


def _url_password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None
