"""A minimal faust-streaming app used by the stack test: counts a topic into Redis.

Run as ``python faust_counter.py worker -l warning`` with FAUST_TOPIC, KAFKA_BOOTSTRAP,
REDIS_URL and COUNTER_KEY in the environment.
"""

from __future__ import annotations

import os

import faust
import redis

TOPIC = os.environ["FAUST_TOPIC"]
KEY = os.environ["COUNTER_KEY"]
app = faust.App(
    f"driftline-test-{TOPIC}",
    broker=f"kafka://{os.environ['KAFKA_BOOTSTRAP']}",
    store="memory://",
    topic_disable_leader=True,
    web_enabled=False,
)
source = app.topic(TOPIC, value_serializer="raw")
store = redis.Redis.from_url(os.environ["REDIS_URL"])


@app.agent(source, concurrency=1)
async def count(stream):  # type: ignore[no-untyped-def]
    async for batch in stream.take(500, within=0.5):
        pipe = store.pipeline(transaction=True)
        pipe.incrby(f"{KEY}:n", len(batch))
        pipe.sadd(f"{KEY}:seen", *batch)
        pipe.execute()


if __name__ == "__main__":
    app.main()
