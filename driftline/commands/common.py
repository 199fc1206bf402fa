"""Flags shared by the commands that talk to Redis or Kafka, and the connections built
from them (every client of every command goes through :func:`kafka_connection` /
:func:`redis_connection`, then :mod:`streams.kafka_config` / :mod:`streams.redis_client`).

Kafka: ``--kafka-config KEY=VALUE`` (repeatable), ``--kafka-config-file`` (properties) and
``DRIFTLINE_KAFKA_<KEY>`` variables pass any librdkafka setting through (SASL_SSL with SCRAM
or PLAIN, mTLS, …). Later sources win: file, then variables, then flags.
Redis: an ACL user and password (``--redis-username``, ``DRIFTLINE_REDIS_PASSWORD`` or
``--redis-password-file``, or in the URL), TLS with ``rediss://`` and ``--redis-ca-file``
(``--redis-cert-file`` / ``--redis-key-file`` for mutual TLS). Secret values are never
shown in ``--help`` or in messages.
"""

from __future__ import annotations

import argparse
import os
import ssl
from pathlib import Path

import redis

from driftline.options import add_option, env_name
from sketches.errors import ConfigError
from streams.kafka_config import (
    KafkaConnection,
    from_environ,
    load_properties,
    parse_pairs,
    probe,
)
from streams.redis_client import RedisConnection, connect_redis
from streams.secret import Secret

REDIS_PASSWORD_ENV = "DRIFTLINE_REDIS_PASSWORD"


def add_redis_options(p: argparse.ArgumentParser) -> None:
    add_option(p, "--redis-url", help="Redis holding state, references and alerts "
               "(rediss:// for TLS)", default="redis://127.0.0.1:6379/0", fallback_env="REDIS_URL")
    add_option(p, "--key-prefix", help="prefix of every Redis key driftline writes",
               default="driftline")
    add_redis_security_options(p)


def add_redis_security_options(p: argparse.ArgumentParser) -> None:
    """ACL user, password and TLS of ``--redis-url`` (every command that uses Redis)."""
    g = p.add_argument_group("Redis authentication and TLS")
    add_option(g, "--redis-username", help="Redis ACL user (or user@ in the URL)")
    add_option(g, "--redis-password-file", help="file holding the Redis password (else "
               f"{REDIS_PASSWORD_ENV}, or the URL); never pass a password as a flag")
    add_option(g, "--redis-ca-file", help="CA certificate(s) to verify a rediss:// server")
    add_option(g, "--redis-cert-file", help="client certificate for mutual TLS")
    add_option(g, "--redis-key-file", help="client private key for mutual TLS")
    add_option(g, "--redis-cluster", help="--redis-url is a node of a Redis Cluster (the "
               "other nodes are discovered)", default=False, type=bool)


def add_kafka_options(p: argparse.ArgumentParser) -> None:
    add_option(p, "--kafka-bootstrap", help="Kafka bootstrap servers",
               default="127.0.0.1:9092", fallback_env="KAFKA_BOOTSTRAP")
    add_kafka_security_options(p)


def add_kafka_security_options(p: argparse.ArgumentParser) -> None:
    """librdkafka pass-through (every command that talks to Kafka)."""
    g = p.add_argument_group("Kafka client settings (security: SASL_SSL, SCRAM, PLAIN, mTLS)")
    cfg_env = env_name("--kafka-config")
    g.add_argument("--kafka-config", action="append", default=None, metavar="KEY=VALUE",
                   help="librdkafka property, e.g. security.protocol=SASL_SSL; repeatable; "
                        f"wins over the file and DRIFTLINE_KAFKA_<KEY> variables [env {cfg_env}"
                        ", one KEY=VALUE per line]; put passwords in the file or a variable "
                        "(DRIFTLINE_KAFKA_SASL_PASSWORD), not on the command line")
    add_option(g, "--kafka-config-file", help="librdkafka properties file (key=value lines, "
               "like Kafka's client.properties)")


def kafka_connection(args: argparse.Namespace) -> KafkaConnection:
    """The Kafka cluster and client settings the flags and environment name."""
    props: dict[str, str] = {}
    if getattr(args, "kafka_config_file", None):
        props.update(load_properties(args.kafka_config_file))
    props.update(from_environ())
    pairs = args.kafka_config
    if pairs is None:
        raw = os.environ.get(env_name("--kafka-config"), "")
        pairs = [line for line in raw.splitlines() if line.strip()]
        props.update(parse_pairs(pairs, env_name("--kafka-config")))
    else:
        props.update(parse_pairs(pairs, "--kafka-config"))
    return KafkaConnection(args.kafka_bootstrap, props)


def check_kafka(conn: KafkaConnection, timeout_s: float = 15.0) -> None:
    """Fail fast (one line) on settings librdkafka refuses or — with TLS/SASL — on
    credentials or certificates the broker refuses."""
    probe(conn, timeout_s)


def redis_connection(args: argparse.Namespace) -> RedisConnection:
    """The Redis the flags and environment name, with its ACL user, password and TLS."""
    password: Secret | None = None
    if getattr(args, "redis_password_file", None):
        try:
            text = Path(args.redis_password_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"--redis-password-file {args.redis_password_file}: "
                              f"{exc.strerror or exc}") from None
        password = Secret(text.rstrip("\r\n"))
    elif os.environ.get(REDIS_PASSWORD_ENV):
        password = Secret(os.environ[REDIS_PASSWORD_ENV])
    return RedisConnection(
        args.redis_url,
        username=getattr(args, "redis_username", None) or None,
        password=password,
        ca_file=getattr(args, "redis_ca_file", None) or None,
        cert_file=getattr(args, "redis_cert_file", None) or None,
        key_file=getattr(args, "redis_key_file", None) or None,
        cluster=bool(getattr(args, "redis_cluster", False)),
    )


def check_redis_access(conn: RedisConnection) -> None:
    """One PING: refused credentials or certificates stop the command with one line; a
    Redis that is merely down is waited out later, as before."""
    client = connect_redis(conn, socket_connect_timeout=5, socket_timeout=5)
    try:
        client.ping()
    except redis.exceptions.AuthenticationError as exc:
        raise ConfigError(f"Redis at {conn.safe_url} refused the credentials: {exc}") from None
    except redis.exceptions.ResponseError as exc:  # NOPERM and the like
        raise ConfigError(f"Redis at {conn.safe_url} refused PING: {exc}") from None
    except redis.exceptions.ConnectionError as exc:
        if _ssl_failure(exc):
            raise ConfigError(f"TLS to Redis at {conn.safe_url} failed: {exc}") from None
    finally:
        client.close()


def _ssl_failure(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def redis_client(args: argparse.Namespace) -> redis.Redis:
    """A client for ``--redis-url`` that has answered a PING (clear error otherwise)."""
    conn = redis_connection(args)
    client = connect_redis(conn, socket_connect_timeout=5)
    try:
        client.ping()
    except redis.exceptions.AuthenticationError as exc:
        raise ConfigError(f"Redis at {conn.safe_url} refused the credentials: {exc}") from None
    except redis.exceptions.ConnectionError as exc:
        raise ConfigError(f"cannot reach Redis at {conn.safe_url}: {exc}") from None
    return client


def child_env(args: argparse.Namespace) -> dict[str, str]:
    """This process' environment plus the Kafka and Redis client settings of ``args`` as
    environment twins, for driftline commands it starts (secrets stay out of argv)."""
    env = dict(os.environ)
    if hasattr(args, "kafka_bootstrap"):
        conn = kafka_connection(args)
        env[env_name("--kafka-config")] = "\n".join(
            f"{k}={v.reveal() if isinstance(v, Secret) else v}"
            for k, v in conn.properties.items())
    rc = redis_connection(args)
    for flag, value in (("--redis-username", rc.username), ("--redis-ca-file", rc.ca_file),
                        ("--redis-cert-file", rc.cert_file), ("--redis-key-file", rc.key_file)):
        if value:
            env[env_name(flag)] = value
    if rc.password:
        env[REDIS_PASSWORD_ENV] = rc.password.reveal()
    return env
