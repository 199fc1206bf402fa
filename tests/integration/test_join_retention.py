"""How long the label join keeps things, against the real Redis (issue #13 audit):

- the *idle backstop* (G13-5): every bucket of waiting entries (hashed ids) carries a
  wall-clock TTL of ``label_ttl`` + one slice + 7 days, set again on each write, while the
  state that makes the join exactly-once (the meta hash: offsets applied, counters) has
  none; what Redis drops that way is counted when the expiry reaches its slice;
- the capped outcome stream (G13-4): outcomes trimmed before the change detectors read
  them are counted ``trimmed``, through :func:`alerts.performance.evaluate` on the real
  :class:`~streams.join.JoinStore`, and exported as ``driftline_labels_total``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from alerts.metrics import DriftlineCollector, Health
from alerts.performance import PerformanceConfig, evaluate
from alerts.results import ModelResult
from streams.join import JoinStore
from streams.join_items import JoinItem
from streams.join_lua import IDLE_MARGIN_MS
from tests.integration.test_join import HOUR, SLICE, SPECS, T0, Feed, counts, entries, window

pytestmark = pytest.mark.integration
KEY = b"k" * 32
SLACK_MS = 60_000
"""What a PTTL read may have run down since the write (a TTL value, not a timing)."""


@pytest.fixture()
def join(redis_url: str, key_prefix: str) -> Iterator[JoinStore]:
    client = redis.Redis.from_url(redis_url)
    try:
        yield JoinStore(client, prefix=key_prefix, specs=SPECS, key=KEY, stream_maxlen=100)
    finally:
        client.close()


def buckets(join: JoinStore, model: str = "bin") -> list[bytes]:
    return sorted(join.client.scan_iter(match=join.keys.base(model) + ":j:*", count=1000))


def assert_fresh_ttl(join: JoinStore, key: bytes) -> None:
    pttl = int(join.client.pttl(key))  # type: ignore[arg-type]
    idle = join.idle_ttl_ms("bin")
    assert idle - SLACK_MS < pttl <= idle, (key, pttl, idle)


def test_buckets_carry_the_idle_backstop_and_each_write_renews_it(join: JoinStore) -> None:
    assert join.idle_ttl_ms("bin") == HOUR + SLICE + IDLE_MARGIN_MS
    f = Feed(join)
    f.pred("a", T0 + 100, score=0.8)
    f.label("early", T0 + 200, "1")
    keys = buckets(join)
    assert keys
    for key in keys:
        assert_fresh_ttl(join, key)
    base = join.keys.base("bin")
    for key in (join.keys.meta("bin"), base + ":slices", base + ":sb"):
        assert join.client.pttl(key) == -1, key  # offsets and counters: no TTL, ever
    # the join of a waiting prediction writes its bucket: the TTL starts again
    [a_key] = [k for k in keys if join.client.hexists(k, join.hid("bin", "a"))]
    join.client.pexpire(a_key, 5_000)
    f.label("a", T0 + 300, "1")
    assert_fresh_ttl(join, a_key)
    # so does a forget marker
    join.forget("bin", ["someone"])
    [f_key] = [k for k in buckets(join) if join.client.hexists(k, join.hid("bin", "someone"))]
    assert_fresh_ttl(join, f_key)


def test_what_the_backstop_dropped_is_counted_when_its_slice_expires(join: JoinStore) -> None:
    """A model that stopped sending for longer than the backstop: Redis drops its buckets
    (here: PEXPIRE 1 ms stands in for the days); when its clock moves on, the expiry finds
    the slice emptied and counts what waited there — the counters stay true."""
    f = Feed(join)
    f.pred("a", T0 + 100, score=0.8)
    f.pred("b", T0 + 150, score=0.3)
    f.label("b", T0 + 160, "0")  # joined: its "D" marker is not waiting
    f.label("ghost", T0 + 200, "1")  # early: its prediction has not come
    assert counts(join) == {"pending": 1, "early": 1, "early_total": 1, "joined": 1}
    for key in buckets(join):
        join.client.pexpire(key, 1)
    deadline = time.monotonic() + 10
    while any(join.client.exists(k) for k in buckets(join)) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not entries(join, "bin")
    f.pred("c", T0 + HOUR + 2 * SLICE, score=0.6)  # the model sends again, much later
    assert join.expire("bin") == 1
    assert counts(join) == {"pending": 1, "expired": 1, "orphan": 1, "idle_expired": 2,
                            "early_total": 1, "joined": 1}
    w = window(join, T0)  # the lost prediction's window is not known: no "x" there
    assert (w["p"], w["n"], w["c:0|0"], w.get("x")) == ("2", "1", "1", None)
    sb = join.client.hgetall(join.keys.base("bin") + ":sb")
    assert not [k for k in sb if k.startswith((b"p:0", b"e:0")) or k == b"0"], sb
    f.label("a", T0 + HOUR + 2 * SLICE, "1")  # its prediction is gone: it waits, unjoined
    assert counts(join)["early"] == 1 and counts(join)["joined"] == 1
    assert join.expire("bin") == 0  # nothing counted twice
    assert counts(join)["idle_expired"] == 2


def pairs(start: int, n: int) -> tuple[list[JoinItem], list[JoinItem]]:
    preds = [JoinItem(start + i, "bin", f"r{start + i}", T0 + start + i, "1", "", "0.9")
             for i in range(n)]
    labels = [JoinItem(start + i, "bin", f"r{start + i}", T0 + start + i + 1, label="1")
              for i in range(n)]
    return preds, labels


def test_outcomes_trimmed_before_the_detectors_read_them_are_counted(
    join: JoinStore, caplog: pytest.LogCaptureFixture
) -> None:
    """Outcome stream capped at ~100 here (200,000 in production): the evaluator reads 50,
    stores its position and trims (as alerts.evaluator does), falls behind by 1,000, and on
    its next read counts what the cap took — seen + trimmed = every outcome joined."""
    cfg = PerformanceConfig(min_labels=1, detector="adwin")

    def run(blob: bytes | None):  # type: ignore[no-untyped-def]
        out = evaluate(cfg, "bin", join, end_ms=T0 + HOUR, measure_ms=HOUR, reference=None,
                       estimate=None, detector=blob, key=KEY, now=0.0)
        assert out.detector is not None
        join.trim("bin", out.detector.position)
        return out

    preds, labels = pairs(0, 50)
    join.put("p", 0, preds)
    join.put("l", 0, labels)
    first = run(None)
    assert first.detector.trimmed == 0 and sum(first.detector.seen.values()) == 50
    position = first.detector.position
    preds, labels = pairs(50, 1000)
    join.put("p", 0, preds)
    join.put("l", 0, labels)
    stream = join.keys.outcomes("bin")
    length = int(join.client.xlen(stream))  # type: ignore[arg-type]
    assert 100 <= length < 300, length  # MAXLEN ~ 100: whole nodes of 100 entries
    [(head, fields)] = join.client.xrange(stream, count=1)  # type: ignore[misc]
    def sid(x: str) -> tuple[int, ...]:
        return tuple(int(p) for p in x.split("-"))

    assert sid(head.decode()) > sid(position)  # stored position older than the first entry
    with caplog.at_level("WARNING", logger="alerts.performance"):
        second = run(first.detector.to_bytes(KEY))
    trimmed = second.detector.trimmed
    assert trimmed == int(fields[b"n"]) - 51 == 1050 - 50 - length, (trimmed, length)
    assert sum(second.detector.seen.values()) + trimmed == 1050 == join.counters("bin")["joined"]
    assert f"{trimmed} joined outcomes were trimmed" in caplog.text
    assert second.result.counters["trimmed"] == trimmed
    again = run(second.detector.to_bytes(KEY))  # nothing new: nothing more counted
    assert again.detector.trimmed == trimmed

    result = ModelResult("bin", "1", "ok", 0.0, 1.0, 0, 0.0, performance=second.result)
    samples = {(s.labels["outcome"]): s.value
               for fam in DriftlineCollector(lambda: [result], lambda: Health()).collect()
               for s in fam.samples if s.name == "driftline_labels_total"}
    assert samples["trimmed"] == trimmed and samples["joined"] == 1050
    assert samples["idle_expired"] == 0
