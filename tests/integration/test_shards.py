"""Change notices and evaluator shards on a real broker: a notice lands on its model's
shard (the partition librdkafka's partitioner picks is the one the evaluator computes),
and two evaluators in one group split the shards and hand them over when one leaves."""

from __future__ import annotations

import time
import uuid

import msgspec
import pytest
import redis
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from alerts.shards import Fence, Notice, Owner, ShardGroup, shard_of
from streams.core import Checkpoint
from streams.notices import NOTICE_TUNING, NoticeSender, ensure_topic
from streams.produce import producer_config
from streams.windows import Counters, WindowKey

pytestmark = pytest.mark.integration


def test_notices_land_on_their_models_shard(kafka_bootstrap: str, make_topic) -> None:  # type: ignore[no-untyped-def]
    topic = f"{make_topic(1)}.notices"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    assert ensure_topic(admin, topic, 5) == 5
    assert ensure_topic(admin, topic, 9) == 5  # exists: its partition count stands
    assert ensure_topic(admin, topic, 0) == 5  # a refused create is fine when it exists
    with pytest.raises(KafkaException) as refused:  # refused and absent: the broker's reason
        ensure_topic(admin, f"{topic}-absent", 0)
    assert refused.value.args[0].code() == KafkaError.INVALID_PARTITIONS
    sender = NoticeSender(Producer(producer_config(kafka_bootstrap, "alerts", **NOTICE_TUNING)),
                          topic)
    models = [f"model-{i}" for i in range(40)]
    sender.send([Checkpoint(3, 1, 10, 0, Counters(), {WindowKey(m, "1", 0): b"" for m in models},
                            {})])
    sender.close()
    assert sender.sent == 40 and sender.failed == 0
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": uuid.uuid4().hex,
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    seen: dict[str, int] = {}
    deadline = time.monotonic() + 30
    while len(seen) < 40 and time.monotonic() < deadline:
        for msg in consumer.consume(100, timeout=1.0):
            assert not msg.error()
            notice = msgspec.json.decode(msg.value(), type=Notice)
            assert notice.partition == 3
            seen[notice.model] = msg.partition()
    consumer.close()
    assert seen == {m: shard_of(m, 5) for m in models}
    admin.delete_topics([topic])


def test_two_evaluators_split_the_shards_and_take_over(kafka_bootstrap: str, make_topic,  # type: ignore[no-untyped-def]
                                                       redis_url: str, key_prefix: str) -> None:
    topic = make_topic(4, prefix="notices")
    client = redis.Redis.from_url(redis_url)
    group_id = f"eval-{uuid.uuid4().hex[:8]}"

    def member(holder: str) -> ShardGroup:
        consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": group_id,
                             "enable.auto.commit": False, "session.timeout.ms": 6000,
                             "heartbeat.interval.ms": 500,
                             "partition.assignment.strategy": "cooperative-sticky"})
        group = ShardGroup(consumer, topic, Owner(Fence(client, key_prefix), 4, holder))
        group.subscribe()
        return group

    def serve(groups: list[ShardGroup], until: object) -> None:
        deadline = time.monotonic() + 60
        while not until():  # type: ignore[operator]
            assert time.monotonic() < deadline, [sorted(g.owner.tokens) for g in groups]
            for g in groups:
                g.poll(0.1)

    a, b = member("a"), member("b")
    serve([a, b], lambda: len(a.owner.tokens) + len(b.owner.tokens) == 4
          and a.owner.tokens and b.owner.tokens)
    assert not set(a.owner.tokens) & set(b.owner.tokens)  # each shard has one owner
    owners = Fence(client, key_prefix).owners()
    assert {s: h for s, (h, _t) in owners.items()} == {
        **{s: "a" for s in a.owner.tokens}, **{s: "b" for s in b.owner.tokens}}
    b_tokens = dict(b.owner.tokens)
    a.consumer.close()  # a leaves (a clean stop; kill -9 is tests/e2e/test_evaluator_takeover)
    serve([b], lambda: len(b.owner.tokens) == 4)
    for s, token in b.owner.tokens.items():  # a new term on the shards taken over
        assert token == b_tokens.get(s, token) or token > max(b_tokens.values())
    b.consumer.close()
    client.close()


def test_a_fatally_failed_alerts_producer_is_replaced(kafka_bootstrap: str, make_topic) -> None:  # type: ignore[no-untyped-def]
    """Fenced by its own transactional id (a fatal producer error), the alerts publisher
    fails that publish and makes a new producer, so the next publish goes through instead
    of every evaluation failing from then on."""
    from alerts.publish import KafkaAlertPublisher, PublishError
    from tests.integration.test_webhook import ALERT

    topic = make_topic(1, prefix="alerts")
    txid = f"tx-{topic}"

    def producer() -> Producer:
        return Producer(producer_config(kafka_bootstrap, "alerts", **{"transactional.id": txid}))

    pub = KafkaAlertPublisher(producer(), topic, timeout_s=20,
                              commit=lambda _p, _t: None, renew=producer)
    pub.publish([ALERT])
    usurper = producer()
    usurper.init_transactions(20)  # the same id, a newer epoch: the first one is fenced
    with pytest.raises(PublishError):
        pub.publish([ALERT])
    assert pub.renewed == 1
    pub.publish([ALERT])  # the new producer fences the usurper in turn
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": f"g-{topic}",
                         "auto.offset.reset": "earliest", "isolation.level": "read_committed"})
    consumer.subscribe([topic])
    got = []
    deadline = time.monotonic() + 30
    while len(got) < 2 and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            got.append(msg.key())
    consumer.close()
    assert got == [ALERT.id.encode()] * 2
