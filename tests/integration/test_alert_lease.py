"""The evaluator lease on a real Redis: one holder, takeover after expiry, fencing."""

from __future__ import annotations

import time

import pytest
import redis

from alerts.lease import Lease

pytestmark = pytest.mark.integration


def test_one_holder_then_takeover_with_larger_token(redis_url: str, key_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        a = Lease(client, key_prefix, "worker-a", ttl_ms=300)
        b = Lease(client, key_prefix, "worker-b", ttl_ms=300)
        t1 = a.acquire()
        assert t1 is not None
        assert b.acquire() is None
        assert a.acquire() == t1  # renewal keeps the term
        time.sleep(0.45)  # a stops renewing (it "died"); its lease expires
        t2 = b.acquire()
        assert t2 is not None and t2 > t1
        assert a.acquire() is None
        # the ex-leader's write is fenced; the new leader's lands
        assert not a.fenced_write(t1, {f"{key_prefix}:alert": b"old"})
        assert b.fenced_write(t2, {f"{key_prefix}:alert": b"new"},
                              hashes={f"{key_prefix}:h": {"x": b"1", "y": b"2"}})
        assert client.get(f"{key_prefix}:alert") == b"new"
        assert client.hgetall(f"{key_prefix}:h") == {b"x": b"1", b"y": b"2"}
        assert b.fenced_write(t2, hashes={f"{key_prefix}:h": {"y": b"3"}})
        assert client.hgetall(f"{key_prefix}:h") == {b"y": b"3"}  # a hash is replaced whole
        b.release()
        assert a.acquire() is not None
    finally:
        client.close()
