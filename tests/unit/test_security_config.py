"""Kafka client settings pass-through, the Redis client factory, and secrets kept out of
``repr``, messages and ``--help``."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from driftline.commands.common import kafka_connection, redis_connection
from sketches.errors import ConfigError
from streams.kafka_config import (
    KafkaConnection,
    client_config,
    from_environ,
    load_properties,
    parse_pairs,
    redacted,
)
from streams.produce import producer_config
from streams.redis_client import RedisConnection, connect_redis
from streams.runner import consumer_config
from streams.secret import Secret, redact_url

SASL = {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "svc", "sasl.password": "hunter2", "ssl.ca.location": "/ca.pem"}


def test_every_client_gets_the_security_settings() -> None:
    conn = KafkaConnection("b:9093", SASL)
    for conf in (producer_config(conn, "events"), producer_config(conn, "alerts"),
                 consumer_config(conn, "g"), client_config(conn)):
        assert conf["bootstrap.servers"] == "b:9093"
        assert {k: conf[k] for k in SASL} == SASL  # revealed only in the librdkafka dict
    # the user's settings win over tuning ...
    conn = KafkaConnection("b", {"linger.ms": "100"})
    assert producer_config(conn, "events")["linger.ms"] == "100"
    # ... but not over what exactly-once needs
    for key, value in (("enable.auto.commit", "true"), ("auto.offset.reset", "earliest")):
        with pytest.raises(ConfigError, match=key):
            consumer_config(KafkaConnection("b", {key: value}), "g")
    with pytest.raises(ConfigError, match=r"enable\.idempotence"):
        producer_config(KafkaConnection("b", {"enable.idempotence": "false"}), "dlq")
    assert producer_config(KafkaConnection("b", {"enable.idempotence": "true"}), "dlq")
    with pytest.raises(ConfigError, match="--kafka-bootstrap"):
        KafkaConnection("b", {"bootstrap.servers": "x"})


def test_secrets_never_show() -> None:
    conn = KafkaConnection("b", {**SASL, "ssl.key.password": "pw2",
                                 "sasl.oauthbearer.client.secret": "pw3"})
    assert isinstance(conn.properties["sasl.password"], Secret)
    for text in (repr(conn), str(redacted(client_config(conn)))):
        assert "hunter2" not in text and "pw2" not in text and "pw3" not in text
    assert "svc" in repr(conn)
    rc = RedisConnection("rediss://u:pw9@h:6380/0", password=Secret("pw8"))
    assert "pw9" not in repr(rc) and "pw8" not in repr(rc)
    assert rc.safe_url == "rediss://u:***@h:6380/0"
    assert redact_url("redis://h:1/0") == "redis://h:1/0"
    assert redact_url("redis://:pw@[::1]:6379") == "redis://:***@[::1]:6379"


def test_properties_file_pairs_and_environment(tmp_path: Path) -> None:
    f = tmp_path / "client.properties"
    f.write_text("# comment\n! also\nsecurity.protocol = SASL_SSL\nsasl.mechanism: PLAIN\n\n"
                 "sasl.jaas.config=x=y\n")
    assert load_properties(f) == {"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN",
                                  "sasl.jaas.config": "x=y"}
    assert parse_pairs(["a.b=1", "c= 2=3"], "--kafka-config") == {"a.b": "1", "c": "2=3"}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_pairs(["novalue"], "--kafka-config")
    with pytest.raises(ConfigError, match="kafka-config-file"):
        load_properties(tmp_path / "missing")
    env = {"DRIFTLINE_KAFKA_SASL_PASSWORD": "pw", "DRIFTLINE_KAFKA_BOOTSTRAP": "b",
           "DRIFTLINE_KAFKA_CONFIG_FILE": "f", "DRIFTLINE_REDIS_URL": "r"}
    assert from_environ(env) == {"sasl.password": "pw"}


def test_cli_merges_file_then_environment_then_flags(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "c.properties"
    f.write_text("sasl.username=from-file\nsasl.mechanism=PLAIN\nlinger.ms=1\n")
    monkeypatch.setenv("DRIFTLINE_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("DRIFTLINE_KAFKA_LINGER_MS", "2")
    args = argparse.Namespace(kafka_bootstrap="b", kafka_config_file=str(f),
                              kafka_config=["linger.ms=3"])
    conn = kafka_connection(args)
    assert dict(conn.properties) == {"sasl.username": "from-file",
                                     "sasl.mechanism": "SCRAM-SHA-256", "linger.ms": "3"}
    monkeypatch.setenv("DRIFTLINE_KAFKA_CONFIG", "linger.ms=4\nacks=all\n")
    args.kafka_config = None
    assert kafka_connection(args).properties["linger.ms"] == "4"


def test_redis_factory_acl_and_tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    client = connect_redis(RedisConnection("rediss://h:6380/0", username="svc",
                                           password=Secret("pw"), ca_file=str(ca)))
    kw = client.connection_pool.connection_kwargs
    assert (kw["username"], kw["password"], kw["ssl_ca_certs"]) == ("svc", "pw", str(ca))
    assert kw["ssl_cert_reqs"] == "required"
    with pytest.raises(ConfigError, match="rediss://"):
        RedisConnection("redis://h/0", ca_file=str(ca))
    with pytest.raises(ConfigError, match="no such file"):
        RedisConnection("rediss://h/0", ca_file=str(tmp_path / "missing.pem"))
    with pytest.raises(ConfigError, match="go together"):
        RedisConnection("rediss://h/0", cert_file=str(ca))
    with pytest.raises(ConfigError, match="expected redis://"):
        RedisConnection("http://h/0")
    with pytest.raises(ConfigError, match="cannot reach the Redis Cluster"):
        connect_redis(RedisConnection("redis://:pw@127.0.0.1:1/0", cluster=True),
                      socket_connect_timeout=1)
    pw = tmp_path / "pw"
    pw.write_text("from-file\n")
    args = argparse.Namespace(redis_url="rediss://h/0", redis_username="svc",
                              redis_password_file=str(pw), redis_ca_file=None,
                              redis_cert_file=None, redis_key_file=None)
    rc = redis_connection(args)
    assert rc.password is not None and rc.password.reveal() == "from-file"
    args.redis_password_file = None
    monkeypatch.setenv("DRIFTLINE_REDIS_PASSWORD", "from-env")
    rc = redis_connection(args)
    assert rc.password is not None and rc.password.reveal() == "from-env"


def test_help_never_shows_secrets_from_the_environment() -> None:
    env = {"PATH": "/usr/bin:/bin", "DRIFTLINE_KAFKA_SASL_PASSWORD": "kafka-pw-1",
           "DRIFTLINE_KAFKA_CONFIG": "sasl.password=kafka-pw-2",
           "DRIFTLINE_REDIS_PASSWORD": "redis-pw-1",
           "DRIFTLINE_REDIS_URL": "redis://u:redis-pw-2@h:1/0"}
    for cmd in ("worker", "evaluator", "simulate", "reference", "status", "demo"):
        args = [cmd, "put", "--help"] if cmd == "reference" else [cmd, "--help"]
        out = subprocess.run([sys.executable, "-m", "driftline.cli", *args], env=env,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        for secret in ("kafka-pw-1", "kafka-pw-2", "redis-pw-1", "redis-pw-2"):
            assert secret not in out.stdout + out.stderr, (cmd, secret)
        if cmd != "reference":
            assert "--kafka-config" in out.stdout or cmd == "status", cmd
        assert "--redis-ca-file" in out.stdout or cmd == "simulate", cmd
