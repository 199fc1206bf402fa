"""Security end to end, on services the test starts itself (the shared stack is plain):

- a Kafka broker whose only client listener is SASL_SSL — SCRAM-SHA-512 over TLS with
  client certificates required (mTLS), certificates generated here by openssl/keytool;
- a redis-server that speaks TLS only, with the default user off and an ACL user limited
  to the test's key prefix.

The producer (``driftline simulate``), the CLI (``reference put``), a worker and its
evaluator all run against them and an alert reaches the alerts topic, read back with the
same properties file. Wrong credentials and untrusted certificates stop each command
within seconds with one line — never a hang, never the secret itself. Both services start in
parallel once for the whole module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.secure_services import (
    REDIS_PASSWORD,
    REDIS_USER,
    SCRAM_PASSWORD,
    SCRAM_USER,
    Certs,
    SecureKafka,
    SecureRedis,
    make_certs,
)
from tests.streamutil import Worker

pytestmark = pytest.mark.integration
CLI = [sys.executable, "-m", "driftline.cli"]
MODEL = "credit-risk"
PREFIX = f"sec-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Certs, SecureKafka, SecureRedis]]:
    work = tmp_path_factory.mktemp("secure")
    certs = make_certs(work / "certs")
    kafka, rds = SecureKafka(work, certs), SecureRedis(work, certs, f"{PREFIX}*")
    kafka.start()  # the broker's JVM warms up while redis starts
    rds.start()
    try:
        rds.wait(certs)
        kafka.wait()
        yield certs, kafka, rds
    finally:
        kafka.stop()
        rds.stop()


def client_props(certs: Certs, path: Path, *, password: str | None = None,
                 ca: str | None = None) -> Path:
    """A librdkafka / kcat properties file: SASL_SSL, SCRAM-SHA-512 and a client cert."""
    lines = ["# driftline test client", "security.protocol=SASL_SSL",
             "sasl.mechanism=SCRAM-SHA-512", f"sasl.username={SCRAM_USER}",
             f"ssl.ca.location={ca or certs.ca}", f"ssl.certificate.location={certs.client}",
             f"ssl.key.location={certs.client_key}"]
    if password is not None:
        lines.append(f"sasl.password={password}")
    path.write_text("\n".join(lines) + "\n")
    return path


def redis_args(rds: SecureRedis, certs: Certs, ca: str | None = None) -> list[str]:
    return ["--redis-url", rds.url, "--redis-username", REDIS_USER,
            "--redis-ca-file", ca or certs.ca, "--key-prefix", PREFIX]


def env(**extra: str) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
    e.update(extra)
    return e


def run(args: list[str], timeout: float = 120, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout,
                          env=env(**extra))


def create_topics(kafka: SecureKafka, props: Path, names: dict[str, int]) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    from streams.kafka_config import KafkaConnection, client_config, load_properties

    conn = KafkaConnection(kafka.bootstrap, load_properties(props))
    admin = AdminClient(client_config(conn))
    futures = admin.create_topics([NewTopic(n, num_partitions=p, replication_factor=1)
                                   for n, p in names.items()])
    for fut in futures.values():
        fut.result(60)


def read_alerts(kafka: SecureKafka, props: Path, topic: str) -> list[dict[str, object]]:
    """Every alert on ``topic``, read with the same properties file. (Debian's kcat links
    librdkafka 2.0.2, whose SCRAM fails against this broker: "invalid credentials" with the
    right ones, so the reader here is confluent-kafka.)"""
    from confluent_kafka import Consumer

    from streams.kafka_config import KafkaConnection, client_config, load_properties

    conn = KafkaConnection(kafka.bootstrap, load_properties(props))
    consumer = Consumer(client_config(conn, {"auto.offset.reset": "earliest"},
                                      fixed={"group.id": uuid.uuid4().hex}))
    consumer.subscribe([topic])
    got: list[dict[str, object]] = []
    try:
        idle = 0
        while idle < 3:
            batch = consumer.consume(100, timeout=1.0)
            idle = 0 if batch else idle + 1
            got += [json.loads(m.value() or b"{}") for m in batch if not m.error()]
    finally:
        consumer.close()
    return got


@pytest.mark.timeout(300)
def test_worker_producer_and_cli_over_sasl_ssl_and_redis_acl_tls(
    secured: tuple[Certs, SecureKafka, SecureRedis], tmp_path: Path,
) -> None:
    certs, kafka, rds = secured
    props = client_props(certs, tmp_path / "client.properties")  # the password is not in it
    with_pw = client_props(certs, tmp_path / "admin.properties", password=SCRAM_PASSWORD)
    events, alerts = f"pred-{uuid.uuid4().hex[:8]}", f"alerts-{uuid.uuid4().hex[:8]}"
    create_topics(kafka, with_pw, {events: 2, f"{events}.dlq": 1, alerts: 1})
    secrets = {"DRIFTLINE_KAFKA_SASL_PASSWORD": SCRAM_PASSWORD,
               "DRIFTLINE_REDIS_PASSWORD": REDIS_PASSWORD}

    # the CLI stores the reference through the ACL user over TLS
    for step in (["simulate", "--training-out", str(tmp_path / "train.parquet"), "--rows",
                  "20000", "--models", MODEL, "--seed", "1", "--no-progress"],
                 ["profile", str(tmp_path / "train.parquet"), "--out", str(tmp_path / "ref.bin"),
                  "--model", MODEL],
                 ["reference", "put", str(tmp_path / "ref.bin"), "--model", MODEL,
                  *redis_args(rds, certs)]):
        done = run(step, **secrets)
        assert done.returncode == 0, done.stderr
    models = tmp_path / "models.toml"
    models.write_text('[defaults]\nwindow = "3s"\nretention = "30s"\nmeasure = "3s"\n'
                      f"[models.{MODEL}]\nmin_count = 200\n")

    log = tmp_path / "worker.log"
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env(**secrets))  # Worker passes os.environ on
    try:
        worker = Worker([*CLI, "-v", "worker", "--kafka-bootstrap", kafka.bootstrap,
                         "--kafka-config-file", str(props), *redis_args(rds, certs),
                         "--topic", events, "--dlq-topic", f"{events}.dlq", "--group",
                         f"g-{events}", "--alerts-topic", alerts, "--models-config", str(models),
                         "--evaluate-interval", "1s", "--checkpoint-interval", "500ms",
                         "--http-port", "-1"], log)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    try:
        # the producer: settings as repeated flags, the password from the environment
        sim = run(["simulate", "--kafka-bootstrap", kafka.bootstrap, "--topic", events,
                   "--no-labels",  # this broker creates no topics on its own
                   "--kafka-config", "security.protocol=SASL_SSL",
                   "--kafka-config", "sasl.mechanism=SCRAM-SHA-512",
                   "--kafka-config", f"sasl.username={SCRAM_USER}",
                   "--kafka-config", f"ssl.ca.location={certs.ca}",
                   "--kafka-config", f"ssl.certificate.location={certs.client}",
                   "--kafka-config", f"ssl.key.location={certs.client_key}",
                   "--models", MODEL, "--rate", "2000", "--duration", "14s", "--seed", "2",
                   "--drift", "income:shift=2sd@4s", "--no-progress"],
                  DRIFTLINE_KAFKA_SASL_PASSWORD=SCRAM_PASSWORD)
        assert sim.returncode == 0, sim.stderr
        assert "failed 0" in sim.stderr, sim.stderr
        fired: list[dict[str, object]] = []
        deadline = time.monotonic() + 60
        while not fired and time.monotonic() < deadline:
            assert worker.alive(), worker.tail()
            fired = [a for a in read_alerts(kafka, with_pw, alerts)
                     if a["state"] == "firing" and a["column"] == "income"]
            time.sleep(1)
    finally:
        code = worker.stop()
    text = log.read_text(errors="replace")
    assert code == 0, worker.tail()
    assert fired, text[-3000:]
    assert SCRAM_PASSWORD not in text and REDIS_PASSWORD not in text


def _one_line_error(done: subprocess.CompletedProcess[str], *secrets: str) -> str:
    assert done.returncode == 2, done.stdout + done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "error" in lines[0], done.stderr
    assert "Traceback" not in done.stderr
    for s in secrets:
        assert s not in done.stdout + done.stderr
    return lines[0]


@pytest.mark.timeout(240)
def test_refused_credentials_and_untrusted_certificates_fail_fast_with_one_line(
    secured: tuple[Certs, SecureKafka, SecureRedis], tmp_path: Path,
) -> None:
    certs, kafka, rds = secured
    props = client_props(certs, tmp_path / "client.properties")
    rogue = client_props(certs, tmp_path / "rogue.properties", ca=certs.rogue_ca)
    good_redis = {"DRIFTLINE_REDIS_PASSWORD": REDIS_PASSWORD}
    worker = ["worker", "--kafka-bootstrap", kafka.bootstrap, *redis_args(rds, certs),
              "--http-port", "-1", "--topic", "nope"]
    cases = [
        ("wrong SCRAM password", [*worker, "--kafka-config-file", str(props)],
         {**good_redis, "DRIFTLINE_KAFKA_SASL_PASSWORD": "not-the-password"}, "refused"),
        ("broker certificate from an untrusted CA", [*worker, "--kafka-config-file", str(rogue)],
         {**good_redis, "DRIFTLINE_KAFKA_SASL_PASSWORD": SCRAM_PASSWORD}, "refused"),
        ("wrong SCRAM password, producer",
         ["simulate", "--kafka-bootstrap", kafka.bootstrap, "--kafka-config-file", str(props),
          "--topic", "nope", "--count", "1", "--no-progress"],
         {"DRIFTLINE_KAFKA_SASL_PASSWORD": "not-the-password"}, "refused"),
        ("wrong SCRAM password, evaluator",
         ["evaluator", "--kafka-bootstrap", kafka.bootstrap, "--kafka-config-file", str(props),
          *redis_args(rds, certs), "--http-port", "-1"],
         {**good_redis, "DRIFTLINE_KAFKA_SASL_PASSWORD": "not-the-password"}, "refused"),
        ("wrong Redis password", ["reference", "list", *redis_args(rds, certs)],
         {"DRIFTLINE_REDIS_PASSWORD": "not-the-password"}, "credentials"),
        ("Redis certificate from an untrusted CA",
         ["reference", "list", *redis_args(rds, certs, ca=certs.rogue_ca)], good_redis, "Redis"),
        ("worker, wrong Redis password", [*worker, "--kafka-config-file", str(props)],
         {"DRIFTLINE_REDIS_PASSWORD": "not-the-password",
          "DRIFTLINE_KAFKA_SASL_PASSWORD": SCRAM_PASSWORD}, "credentials"),
        ("plain redis:// to a TLS-only port",
         ["reference", "list", "--redis-url", f"redis://127.0.0.1:{rds.port}/0"], {}, "Redis"),
    ]
    for what, args, extra, word in cases:
        started = time.monotonic()
        done = run(args, timeout=60, **extra)
        line = _one_line_error(done, SCRAM_PASSWORD, REDIS_PASSWORD, "not-the-password")
        assert word in line, (what, line)
        assert time.monotonic() - started < 30, (what, "took too long")
