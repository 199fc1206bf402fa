"""Flags shared by the commands that talk to Redis or Kafka."""

from __future__ import annotations

import argparse

import redis

from driftline.options import add_option
from sketches.errors import ConfigError


def add_redis_options(p: argparse.ArgumentParser) -> None:
    add_option(p, "--redis-url", help="Redis holding state, references and alerts",
               default="redis://127.0.0.1:6379/0", fallback_env="REDIS_URL")
    add_option(p, "--key-prefix", help="prefix of every Redis key driftline writes",
               default="driftline")


def add_kafka_options(p: argparse.ArgumentParser) -> None:
    add_option(p, "--kafka-bootstrap", help="Kafka bootstrap servers",
               default="127.0.0.1:9092", fallback_env="KAFKA_BOOTSTRAP")


def redis_client(args: argparse.Namespace) -> redis.Redis:
    """A client for ``--redis-url`` that has answered a PING (clear error otherwise)."""
    try:
        client = redis.Redis.from_url(args.redis_url, socket_connect_timeout=5)
        client.ping()
    except ValueError as exc:
        raise ConfigError(f"--redis-url {args.redis_url!r}: {exc}") from exc
    except redis.exceptions.ConnectionError as exc:
        raise ConfigError(f"cannot reach Redis at {args.redis_url}: {exc}") from exc
    return client
