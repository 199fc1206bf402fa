"""The one place every driftline Kafka client's librdkafka settings are built.

A :class:`KafkaConnection` is where the cluster is (``bootstrap``) plus the user's own
librdkafka properties — ``security.protocol``, ``sasl.*``, ``ssl.*`` (SASL_SSL with SCRAM or
PLAIN, mTLS), or any other client setting — from ``--kafka-config KEY=VALUE``,
``--kafka-config-file`` (Java-properties format) and ``DRIFTLINE_KAFKA_<KEY>`` variables.
:func:`client_config` merges, in this order: ``bootstrap.servers``, the driftline tuning of
the client's purpose, the user's properties (which win over tuning), and the settings
driftline's correctness depends on (``fixed``: e.g. manual offset commits, idempotence),
which a user property may not contradict (:class:`~sketches.errors.ConfigError`).

Secret values (passwords, private keys, OAuth secrets) are kept as
:class:`~streams.secret.Secret` and revealed only in the dict handed to librdkafka;
:func:`redacted` gives a copy fit for logs. :func:`probe` fails fast, with one line, on
credentials or certificates the broker refuses, instead of retrying forever.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sketches.errors import ConfigError
from streams.secret import MASK, Secret

log = logging.getLogger(__name__)

ENV_PREFIX = "DRIFTLINE_KAFKA_"
# DRIFTLINE_KAFKA_* variables that are flags' twins, not librdkafka properties
RESERVED_ENV = frozenset({"BOOTSTRAP", "CONFIG", "CONFIG_FILE"})
_SECRET_WORDS = ("password", "secret", "jaas", "oauthbearer.config")
_SECRET_KEYS = frozenset({"ssl.key.pem", "ssl_key"})
_INSECURE = frozenset({"", "plaintext"})


def is_secret(key: str) -> bool:
    k = key.lower()
    return k in _SECRET_KEYS or any(w in k for w in _SECRET_WORDS)


Value = str | Secret


@dataclass(frozen=True, slots=True)
class KafkaConnection:
    """Where the Kafka cluster is and how to talk to it (librdkafka properties)."""

    bootstrap: str
    properties: Mapping[str, Value] = field(default_factory=dict)

    def __post_init__(self) -> None:
        props = {k: (Secret(v) if isinstance(v, str) and is_secret(k) else v)
                 for k, v in self.properties.items()}
        if "bootstrap.servers" in props:
            raise ConfigError("set the brokers with --kafka-bootstrap, not the "
                              "bootstrap.servers property")
        object.__setattr__(self, "properties", props)

    @property
    def secured(self) -> bool:
        """True when the connection uses TLS or SASL (the probe checks those)."""
        proto = str(self.properties.get("security.protocol", "")).lower()
        return proto not in _INSECURE

    def __repr__(self) -> str:
        return f"KafkaConnection({self.bootstrap!r}, {redacted(self.properties)!r})"


def client_config(
    kafka: KafkaConnection | str,
    tuning: Mapping[str, Any] | None = None,
    fixed: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The librdkafka dict of one client: bootstrap, ``tuning`` (the user's properties
    override it), the user's properties, then ``fixed`` (which they may not contradict)."""
    conn = KafkaConnection(kafka) if isinstance(kafka, str) else kafka
    conf: dict[str, Any] = {"bootstrap.servers": conn.bootstrap, **(tuning or {})}
    for key, value in conn.properties.items():
        conf[key] = value.reveal() if isinstance(value, Secret) else value
    for key, value in (fixed or {}).items():
        mine = conn.properties.get(key)
        if mine is not None and _norm(mine) != _norm(value):
            raise ConfigError(f"Kafka property {key}={mine} is not allowed: driftline needs "
                              f"{key}={_norm(value)} for exactly-once processing")
        conf[key] = value
    return conf


def _norm(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip().lower()


def redacted(config: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` with secret values shown as ``***`` (and callbacks dropped)."""
    return {k: (MASK if is_secret(k) or isinstance(v, Secret) else v)
            for k, v in config.items() if not callable(v)}


def parse_pairs(pairs: Iterable[str], source: str) -> dict[str, str]:
    """``KEY=VALUE`` strings (flags, or lines of ``DRIFTLINE_KAFKA_CONFIG``) as a dict."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{source}: expected KEY=VALUE, got {pair.split('=')[0]!r}")
        out[key.strip()] = value.strip()
    return out


def load_properties(path: str | Path) -> dict[str, str]:
    """A Java-style ``.properties`` file (``key=value`` or ``key: value``; ``#``/``!``
    comments), the format of Kafka's own ``client.properties``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--kafka-config-file {path}: {exc.strerror or exc}") from None
    out: dict[str, str] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        cut = min((i for i in (line.find("="), line.find(":")) if i >= 0), default=-1)
        if cut <= 0:
            raise ConfigError(f"--kafka-config-file {path}, line {n}: expected key=value")
        out[line[:cut].strip()] = line[cut + 1:].strip()
    return out


def from_environ(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Properties from ``DRIFTLINE_KAFKA_<KEY>`` variables: ``DRIFTLINE_KAFKA_SASL_MECHANISM``
    → ``sasl.mechanism`` (``_`` becomes ``.``, lower case)."""
    env = os.environ if environ is None else environ
    out: dict[str, str] = {}
    for name, value in env.items():
        if name.startswith(ENV_PREFIX):
            rest = name[len(ENV_PREFIX):]
            if rest and rest not in RESERVED_ENV:
                out[rest.lower().replace("_", ".")] = value
    return out


class KafkaAuthError(ConfigError):
    """The broker refused the credentials or the TLS handshake failed."""


def probe(conn: KafkaConnection, timeout_s: float = 15.0) -> None:
    """Check that librdkafka accepts the settings and — on a TLS or SASL connection — that
    the broker accepts the credentials and certificates: one clear error instead of a
    worker retrying forever. A broker that is merely down is not an error here (librdkafka
    waits it out, as without security)."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient

    fatal: list[str] = []
    fatal_codes = {KafkaError._AUTHENTICATION, KafkaError._SSL}

    def on_error(err: Any) -> None:
        if err.code() in fatal_codes:
            fatal.append(str(err.str()))

    # librdkafka's own log lines would repeat the error below: the probe reports it once
    conf = client_config(conn, {"error_cb": on_error, "log_level": 0})
    try:
        admin = AdminClient(conf)
    except KafkaException as exc:
        raise ConfigError(f"Kafka client settings: {exc.args[0].str()}") from None
    if not conn.secured:
        return
    deadline = time.monotonic() + timeout_s
    answered = False
    while not fatal and time.monotonic() < deadline:
        try:
            admin.list_topics(timeout=1.0)
            answered = True
            break
        except KafkaException:
            admin.poll(0.1)  # serves error_cb
    admin.poll(0)
    if fatal:
        raise KafkaAuthError(f"Kafka at {conn.bootstrap} refused the connection: {fatal[0]}")
    if not answered:
        log.warning("Kafka at %s did not answer within %.0fs; continuing (librdkafka retries)",
                    conn.bootstrap, timeout_s)
