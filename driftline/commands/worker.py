"""``driftline worker``: the stream processor (prediction events → window profiles in Redis).

Without ``--models-config`` every valid model name is accepted with 5-minute windows
and 1-hour retention; with one, only the listed models (others go to the DLQ with reason
``unknown_model``). See :mod:`driftline.models` for the file format.
"""

from __future__ import annotations

import argparse
import importlib

from driftline.alerting import load_alerting
from driftline.commands.common import (
    add_kafka_security_options,
    add_redis_security_options,
    check_kafka,
    check_redis_access,
    kafka_connection,
    redis_connection,
)
from driftline.evaluator_child import EvaluatorChild
from driftline.models import (
    load_catalog,
    parse_duration_ms,
    with_reference_types,
    with_rosters,
)
from driftline.monitor import Monitor, MonitorSettings
from driftline.options import add_option, duration
from sketches.errors import ConfigError
from sketches.reference import Reference
from sketches.store import ReferenceStore
from streams.health import WorkerHealth
from streams.redis_client import connect_redis
from streams.windows import ModelCatalog
from streams.worker import WorkerSettings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("worker", help="run the stream processor", description=__doc__)
    add_option(p, "--engine", help="consumer runtime", default="confluent",
               choices=["confluent", "faust"])
    add_option(p, "--kafka-bootstrap", help="Kafka bootstrap servers", required=True,
               fallback_env="KAFKA_BOOTSTRAP")
    add_option(p, "--redis-url", help="Redis URL for window state (rediss:// for TLS)",
               required=True, fallback_env="REDIS_URL")
    add_kafka_security_options(p)
    add_redis_security_options(p)
    add_option(p, "--topic", help="prediction events topic", default="predictions")
    add_option(p, "--dlq-topic", help="dead-letter topic", default="predictions.dlq")
    add_option(p, "--labels-topic", help="label events topic (models with a [performance] "
               "table)", default="labels")
    add_option(p, "--labels-dlq-topic", help="dead-letter topic of labels",
               default="labels.dlq")
    add_option(p, "--id-key-file", help="file holding the key of the id hash of the label "
               "join (default: a random key kept in Redis)")
    add_option(p, "--group", help="Kafka consumer group", default="driftline")
    add_option(p, "--models-config", help="models file (TOML or YAML); none = accept any model")
    add_option(p, "--key-prefix", help="Redis key prefix", default="driftline")
    add_option(p, "--batch-size", help="max records per consume call", default=5000, type=int)
    add_option(p, "--checkpoint-records", help="checkpoint after this many records",
               default=100_000, type=int)
    add_option(p, "--checkpoint-interval", help="checkpoint at least this often (e.g. 2s)",
               default="2s", type=duration)
    add_option(p, "--session-timeout-ms", help="Kafka group session timeout", default=10_000,
               type=int)
    add_option(p, "--instance-id", help="static group membership id (fast restarts)")
    add_option(p, "--max-event-bytes", help="larger messages go to the DLQ", default=1 << 20,
               type=int)
    add_option(p, "--window-ttl", help="TTL of stored windows", default="7d", type=duration)
    add_option(p, "--max-future-skew", help="events stamped further than this ahead of "
               "their Kafka timestamp go to the DLQ (bad_ts)", default="5m")
    add_option(p, "--on-state-loss", help="when Redis lost a partition's state: rebuild it "
               "from Kafka, resume (accept a recorded gap) or stop", default="rebuild",
               choices=["rebuild", "resume", "stop"])
    add_option(p, "--max-models", help="models not in the models file a partition accepts; "
               "more go to the DLQ (limit)", default=100, type=int)
    add_option(p, "--max-columns", help="columns per model window; events adding more go to "
               "the DLQ (limit)", default=1000, type=int)
    add_option(p, "--max-versions", help="versions of one model with open windows in a "
               "partition; events of more go to the DLQ (limit)", default=20, type=int)
    add_option(p, "--redis-fsync", help="wait for Redis AOF fsync after each checkpoint",
               default=False, type=bool)
    add_option(p, "--evaluate", help="take part in evaluation: join the evaluator group "
               "and evaluate the models of the shards Kafka assigns this process (every "
               "evaluating process gets a share); --no-evaluate when `driftline evaluator` "
               "runs apart", default=True, type=bool)
    add_option(p, "--evaluator-process", help="evaluate in a child process the worker starts "
               "(`driftline evaluator`, restarted if it dies; its HTTP endpoint on "
               "--http-port + 1) instead of a thread beside ingest", default=False, type=bool)
    add_monitor_options(p)
    p.set_defaults(func=run)


def add_monitor_options(p: argparse.ArgumentParser) -> None:
    """The evaluator's and HTTP endpoint's flags (``worker`` and ``evaluator`` share them)."""
    add_option(p, "--alerts-topic", help="topic alerts are published to", default="alerts")
    add_option(p, "--evaluate-interval", help="how often the evaluator runs", default="5s",
               type=duration)
    add_option(p, "--evaluator-lease", help="evaluator group session timeout: a dead "
               "evaluator's shards move to the others after at most this long",
               default="10s", type=duration)
    add_option(p, "--evaluator-shards", help="evaluator shards (partitions of the "
               "<topic>.notices topic) when it is created; models are spread over them",
               default=16, type=int)
    add_option(p, "--evaluator-sweep", help="re-read every owned model at least this often "
               "(between sweeps only models named by change notices are re-read); closed "
               "windows are compacted and rolled up at each sweep", default="60s",
               type=duration)
    add_option(p, "--keep-hourly", help="keep hourly roll-ups of closed windows this long "
               "(event time) before rolling them into daily ones", default="7d",
               type=duration)
    add_option(p, "--keep-daily", help="keep daily roll-ups this long (event time)",
               default="90d", type=duration)
    add_option(p, "--http-host", help="address /metrics, /healthz, /readyz and /models "
               "listen on (0.0.0.0: every interface, e.g. in a container)", default="127.0.0.1")
    add_option(p, "--http-port", help="port of the HTTP endpoint (-1: none)", default=9464,
               type=int)
    add_option(p, "--webhook-url", help="also POST alerts to this Alertmanager-compatible "
               "URL (…/api/v2/alerts)")


def settings_from_args(args: argparse.Namespace) -> WorkerSettings:
    return WorkerSettings(
        kafka_bootstrap=args.kafka_bootstrap,
        redis_url=args.redis_url,
        topic=args.topic,
        dlq_topic=args.dlq_topic,
        group=args.group,
        key_prefix=args.key_prefix,
        batch_size=args.batch_size,
        checkpoint_records=args.checkpoint_records,
        checkpoint_interval_s=parse_duration_ms(args.checkpoint_interval, "--checkpoint-interval")
        / 1000,
        session_timeout_ms=args.session_timeout_ms,
        instance_id=args.instance_id or None,
        max_event_bytes=args.max_event_bytes,
        window_ttl_ms=parse_duration_ms(args.window_ttl, "--window-ttl"),
        redis_fsync=bool(args.redis_fsync),
        max_future_ms=parse_duration_ms(args.max_future_skew, "--max-future-skew"),
        max_models=_positive(args.max_models, "--max-models"),
        max_columns=_positive(args.max_columns, "--max-columns"),
        max_versions=_positive(args.max_versions, "--max-versions"),
        on_state_loss=args.on_state_loss,
        labels_topic=args.labels_topic,
        labels_dlq_topic=args.labels_dlq_topic,
        id_key=read_key_file(args.id_key_file),
        shards=_positive(args.evaluator_shards, "--evaluator-shards"),
        kafka=kafka_connection(args),
        redis=redis_connection(args),
    )


def read_key_file(path: str | None) -> bytes | None:
    if not path:
        return None
    try:
        with open(path, "rb") as fh:
            key = fh.read().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read --id-key-file {path}: {exc}") from exc
    if len(key) < 16:
        raise ConfigError(f"--id-key-file {path}: the key must be at least 16 bytes")
    return key[:64]


def _positive(value: int, flag: str) -> int:
    if value < 1:
        raise ConfigError(f"{flag} must be >= 1, got {value}")
    return value


def monitor_from_args(args: argparse.Namespace, health: _HealthBox,
                      evaluate: bool | None = None) -> Monitor:
    models, fallback = load_alerting(args.models_config)
    settings = MonitorSettings(
        redis_url=args.redis_url,
        kafka_bootstrap=args.kafka_bootstrap,
        key_prefix=args.key_prefix,
        topic=args.topic,
        alerts_topic=args.alerts_topic,
        http_host=args.http_host,
        http_port=args.http_port,
        interval_s=parse_duration_ms(args.evaluate_interval, "--evaluate-interval") / 1000,
        lease_ttl_s=parse_duration_ms(args.evaluator_lease, "--evaluator-lease") / 1000,
        shards=args.evaluator_shards,
        # the faust engine sends no change notices: every evaluation re-reads every model
        sweep_s=(0.0 if getattr(args, "engine", "confluent") == "faust" else
                 parse_duration_ms(args.evaluator_sweep, "--evaluator-sweep") / 1000),
        keep_hourly_ms=parse_duration_ms(args.keep_hourly, "--keep-hourly"),
        keep_daily_ms=parse_duration_ms(args.keep_daily, "--keep-daily"),
        webhook_url=args.webhook_url or None,
        evaluate=bool(args.evaluate) if evaluate is None else evaluate,
        kafka=kafka_connection(args),
        redis=redis_connection(args),
        id_key=read_key_file(getattr(args, "id_key_file", None)),
    )
    return Monitor(settings, models, fallback, health=health.get,
                   catalog=load_catalog(args.models_config))


class _HealthBox:
    """Hands the runner's live health object to the monitor once the runner exists."""

    def __init__(self) -> None:
        self.value: WorkerHealth | None = None

    def set(self, value: WorkerHealth) -> None:
        self.value = value

    def get(self) -> WorkerHealth | None:
        return self.value


def from_references(catalog: ModelCatalog, settings: WorkerSettings) -> ModelCatalog:
    """The models' column types and the segment rosters not given in the models file,
    from their default references (read once at start: a reference put later takes
    effect at the next restart; until then its model's columns are typed by value)."""
    client = connect_redis(settings.redis_connection, socket_timeout=10)
    try:
        refs = ReferenceStore(client, settings.key_prefix, chunks=lambda _model: False)
        read: dict[str, Reference | None] = {}

        def reference_of(model: str) -> Reference | None:
            if model not in read:
                read[model] = refs.get(model)
            return read[model]

        names = set(catalog.models) | (refs.models() if catalog.accept_unknown else set())
        catalog = with_reference_types(catalog, sorted(names), reference_of)
        return with_rosters(catalog, reference_of)
    finally:
        client.close()


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    catalog = load_catalog(args.models_config)
    if catalog.max_horizon_ms > settings.window_ttl_ms:
        raise ConfigError("--window-ttl must exceed every model's window + retention")
    if args.engine == "faust" and settings.kafka_connection.properties:
        raise ConfigError("--engine faust does not take Kafka client settings (--kafka-config"
                          ", DRIFTLINE_KAFKA_*): use --engine confluent")
    check_redis_access(settings.redis_connection)
    check_kafka(settings.kafka_connection)
    catalog = from_references(catalog, settings)
    health = _HealthBox()
    child = EvaluatorChild(args) if args.evaluate and args.evaluator_process else None
    # (validates the alerting config first)
    monitor = monitor_from_args(args, health, evaluate=False if child else None)
    monitor.start()
    if child is not None:
        child.start()
    try:
        if args.engine == "faust":
            try:
                faust_runner = importlib.import_module("streams.faust_runner")
            except ImportError as exc:
                raise ConfigError(f"--engine faust is not available: {exc}") from exc
            code: int = faust_runner.run_worker(settings, catalog, on_health=health.set)
            return code
        from streams.worker import run_confluent_worker

        return run_confluent_worker(settings, catalog, on_health=health.set)
    finally:
        if child is not None:
            child.stop()
        monitor.stop()
