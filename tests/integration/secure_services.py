"""Secured services for the security tests, started by the tests themselves.

- :func:`make_certs`: a CA, a server certificate for 127.0.0.1/localhost, a client
  certificate (mutual TLS) and a second, untrusted CA — all by ``openssl``; the broker's
  keystore and truststore are PKCS#12 files made by ``openssl pkcs12``.
- :class:`SecureKafka`: a single-node KRaft broker from the stack's cached Apache Kafka jars
  with a SASL_SSL listener (SCRAM-SHA-512 over TLS, client certificates required), the
  SCRAM user created at format time (``StorageTool format --add-scram``).
- :class:`SecureRedis`: Debian's redis-server with TLS only (``tls-port``, no plain port)
  and an ACL user limited to one key prefix; the default user is off.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KAFKA_VERSION = os.environ.get("KAFKA_VERSION", "4.1.1")
SCRAM_USER, SCRAM_PASSWORD = "driftline-svc", "s3cr3t-Scram-pw"
REDIS_USER, REDIS_PASSWORD = "driftline-svc", "s3cr3t-Redis-pw"
STORE_PASSWORD = "store-pw-123456"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@dataclass(frozen=True)
class Certs:
    dir: Path

    def __getattr__(self, name: str) -> str:  # certs.ca -> <dir>/ca.pem
        return str(self.dir / f"{name.replace('_', '-')}.pem")


def make_certs(d: Path) -> Certs:
    d.mkdir(parents=True, exist_ok=True)
    ext = d / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for ca in ("ca", "rogue-ca"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                 "-subj", f"/CN=driftline test {ca}", "-keyout", f"{ca}-key.pem",
                 "-out", f"{ca}.pem", cwd=d)
    for name, cn in (("server", "localhost"), ("client", SCRAM_USER)):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}",
                 "-keyout", f"{name}-key.pem", "-out", f"{name}.csr", cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem",
                 "-CAcreateserial", "-days", "2", "-extfile", str(ext),
                 "-out", f"{name}.pem", cwd=d)
    _openssl("pkcs12", "-export", "-in", "server.pem", "-inkey", "server-key.pem",
             "-name", "broker", "-out", "server.p12", "-passout", f"pass:{STORE_PASSWORD}", cwd=d)
    # a truststore holding the CA: a PKCS#12 of one certificate entry
    subprocess.run(["keytool", "-importcert", "-noprompt", "-alias", "ca", "-file", "ca.pem",
                    "-keystore", "trust.p12", "-storetype", "PKCS12",
                    "-storepass", STORE_PASSWORD], cwd=d, check=True, capture_output=True,
                   timeout=60)
    return Certs(d)


def _kafka_libs() -> Path:
    cache = os.environ.get("DRIFTLINE_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "driftline")
    libs = Path(cache) / f"kafka-{KAFKA_VERSION}" / "libs"
    assert (libs / ".complete").exists(), f"no Kafka jars in {libs}: run `make stack` first"
    return libs


class SecureKafka:
    """A broker whose only client listener is SASL_SSL (SCRAM-SHA-512, client certs required).

    An INTERNAL plaintext listener on loopback serves inter-broker traffic only."""

    def __init__(self, work: Path, certs: Certs) -> None:
        self.work = work
        self.port, self.ctrl, self.internal = free_port(), free_port(), free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        d = work / "kafka"
        (d / "data").mkdir(parents=True)
        c = certs.dir
        props = f"""process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:{self.ctrl}
listeners=INTERNAL://127.0.0.1:{self.internal},SASL_SSL://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.ctrl}
advertised.listeners=INTERNAL://127.0.0.1:{self.internal},SASL_SSL://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.ctrl}
controller.listener.names=CONTROLLER
inter.broker.listener.name=INTERNAL
listener.security.protocol.map=CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT,SASL_SSL:SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.ssl.client.auth=required
ssl.keystore.type=PKCS12
ssl.keystore.location={c}/server.p12
ssl.keystore.password={STORE_PASSWORD}
ssl.key.password={STORE_PASSWORD}
ssl.truststore.type=PKCS12
ssl.truststore.location={c}/trust.p12
ssl.truststore.password={STORE_PASSWORD}
log.dirs={d}/data
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=2
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=2
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
"""
        (d / "server.properties").write_text(props)
        (d / "log4j2.properties").write_text(
            "status = warn\nappender.file.type = File\nappender.file.name = FILE\n"
            f"appender.file.fileName = {d}/server.log\nappender.file.layout.type = PatternLayout\n"
            "appender.file.layout.pattern = [%d] %p %m (%c)%n\nrootLogger.level = INFO\n"
            "rootLogger.appenderRef.file.ref = FILE\n")
        self.dir = d
        self.proc: subprocess.Popen[bytes] | None = None

    def _java(self) -> list[str]:
        return ["java", "-Xms128m", "-Xmx384m", "-XX:+UseG1GC", "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={self.dir}/log4j2.properties",
                "-cp", f"{_kafka_libs()}/*"]

    def start(self) -> None:
        """Format (with the SCRAM user) and launch; :meth:`wait` blocks until it answers."""
        fmt = subprocess.run(
            [*self._java(), "kafka.tools.StorageTool", "format", "--standalone",
             "-t", "c2VjdXJpdHktdGVzdHMtMQ", "-c", str(self.dir / "server.properties"),
             "--add-scram", f"SCRAM-SHA-512=[name={SCRAM_USER},password={SCRAM_PASSWORD}]"],
            capture_output=True, text=True, timeout=120)
        assert fmt.returncode == 0, fmt.stdout + fmt.stderr
        out = open(self.dir / "stdout.log", "wb")  # noqa: SIM115 - lives as long as the broker
        self.proc = subprocess.Popen([*self._java(), "kafka.Kafka",
                                      str(self.dir / "server.properties")],
                                     stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def wait(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None and self.proc.poll() is None, self.log_tail()
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", self.internal), timeout=1):
                ok = subprocess.run(["kcat", "-L", "-b", f"127.0.0.1:{self.internal}", "-m", "3"],
                                    capture_output=True, timeout=20)
                if ok.returncode == 0:
                    return
            assert time.monotonic() < deadline, "secure broker did not start: " + self.log_tail()
            time.sleep(0.5)

    def log_tail(self) -> str:
        log = self.dir / "server.log"
        return log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


class SecureRedis:
    """redis-server on a TLS port only, with an ACL user limited to ``key_pattern``."""

    def __init__(self, work: Path, certs: Certs, key_pattern: str) -> None:
        self.port = free_port()
        d = work / "redis"
        d.mkdir(parents=True)
        (d / "redis.conf").write_text(
            f"port 0\ntls-port {self.port}\nbind 127.0.0.1\ndir {d}\n"
            f"tls-cert-file {certs.server}\ntls-key-file {certs.server_key}\n"
            f"tls-ca-cert-file {certs.ca}\ntls-auth-clients no\nsave \"\"\nappendonly no\n"
            "user default off\n"
            f"user {REDIS_USER} on >{REDIS_PASSWORD} ~{key_pattern} +@all -@dangerous\n")
        self.url = f"rediss://127.0.0.1:{self.port}/0"
        self.dir = d
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert shutil.which("redis-server"), "redis-server is not installed"
        self.proc = subprocess.Popen(["redis-server", str(self.dir / "redis.conf")],
                                     stdout=open(self.dir / "redis.log", "wb"),  # noqa: SIM115
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def wait(self, certs: Certs, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None and self.proc.poll() is None, (
                self.dir / "redis.log").read_text(errors="replace")
            ok = subprocess.run(
                ["redis-cli", "--tls", "--cacert", certs.ca, "-p", str(self.port),
                 "--user", REDIS_USER, "--pass", REDIS_PASSWORD, "--no-auth-warning", "ping"],
                capture_output=True, text=True, timeout=10)
            if "PONG" in ok.stdout:
                return
            assert time.monotonic() < deadline, ok.stdout + ok.stderr
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)
