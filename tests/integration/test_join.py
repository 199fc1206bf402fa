"""The label join (:class:`streams.join.JoinStore`) against the real Redis: one test per
edge case of issue #13, and the Lua bucket functions against :mod:`sketches.performance`."""

from __future__ import annotations

import contextlib
import math
import random
from collections import Counter
from collections.abc import Iterator

import pytest
import redis

from sketches.performance import GAMMA, log_bucket, score_bin
from streams.join import JoinStore
from streams.join_items import JoinItem
from streams.windows import LabelSpec

pytestmark = pytest.mark.integration

T0 = 1_795_420_800_000  # 2026-11-23T08:00Z, a multiple of every window below
MIN = 60_000
HOUR = 60 * MIN
BIN = LabelSpec(window_ms=MIN, retention_ms=MIN, label_ttl_ms=HOUR)
# slice of the binary model: max(window, ttl / 8) = 7.5 min
SLICE = HOUR // 8
SPECS = {
    "bin": BIN,
    "small": LabelSpec(window_ms=MIN, retention_ms=MIN, label_ttl_ms=HOUR, max_pending=5),
    "multi": LabelSpec(task="multiclass", window_ms=MIN, retention_ms=MIN, label_ttl_ms=HOUR),
    "reg": LabelSpec(task="regression", window_ms=MIN, retention_ms=MIN, label_ttl_ms=HOUR),
}


@pytest.fixture()
def join(redis_url: str, key_prefix: str) -> Iterator[JoinStore]:
    client = redis.Redis.from_url(redis_url)
    try:
        yield JoinStore(client, prefix=key_prefix, specs=SPECS, key=b"k" * 32)
    finally:
        client.close()


class Feed:
    """Offsets per (topic kind, partition), so each test reads like the stream it sends."""

    def __init__(self, join: JoinStore) -> None:
        self.join = join
        self.next: dict[tuple[str, int], int] = {}

    def _off(self, kind: str, partition: int) -> int:
        off = self.next.get((kind, partition), 0)
        self.next[(kind, partition)] = off + 1
        return off

    def pred(self, ident: str, ts: int, *, model: str = "bin", version: str = "1",
             score: float | None = 0.8, pclass: str = "", label: str = "",
             partition: int = 0) -> int:
        number = "" if score is None else repr(score)
        item = JoinItem(self._off("p", partition), model, ident, ts, version, pclass, number,
                        label)
        return self.join.put("p", partition, [item])

    def label(self, ident: str, ts: int, label: str, *, model: str = "bin",
              partition: int = 0) -> int:
        return self.join.put("l", partition, [JoinItem(self._off("l", partition), model, ident,
                                                       ts, label=label)])


def window(join: JoinStore, start: int, model: str = "bin", version: str = "1") -> dict[str, str]:
    for s, fields in join.windows(model, start, start + 1).get(version, []):
        if s == start:
            return fields
    return {}


def counts(join: JoinStore, model: str = "bin") -> dict[str, int]:
    return {k: v for k, v in join.counters(model).items() if v and k != "clock"}


def entries(join: JoinStore, model: str) -> dict[bytes, bytes]:
    """Every entry of the join buffer of ``model``: hashed id -> entry."""
    out: dict[bytes, bytes] = {}
    for key in join.client.scan_iter(match=join.keys.base(model) + ":j:*", count=1000):
        out.update(join.client.hgetall(key))  # type: ignore[arg-type]
    return out


# ------------------------------------------------------------------ edge cases
def test_label_after_prediction(join: JoinStore) -> None:
    f = Feed(join)
    assert f.pred("a", T0 + 100, score=0.8) == 1  # >= 0.5: predicted "1"
    assert f.pred("b", T0 + 200, score=0.2) == 1
    assert f.pred("c", T0 + 300, score=0.5) == 1  # the threshold itself is positive
    assert counts(join)["pending"] == 3
    f.label("a", T0 + 100, "1")  # delay 0 -> d0
    f.label("b", T0 + 200 + 5_000, "1")
    f.label("c", T0 + 300 + 2_000, "0")
    w = window(join, T0)
    assert w == {"p": "3", "n": "3", "c:1|1": "1", "c:0|1": "1", "c:1|0": "1",
                 "s:1:800": "1", "s:1:200": "1", "s:0:500": "1",
                 "d0": "1", f"d:{log_bucket(5.0)}": "1", f"d:{log_bucket(2.0)}": "1"}
    assert counts(join) == {"joined": 3}  # nothing pending, nothing late
    outcomes = join.outcomes("bin", "0")
    assert [(v, e, n) for _, v, e, n in outcomes] == [("1", 0.0, 1), ("1", 1.0, 2), ("1", 1.0, 3)]


def test_label_before_prediction_is_early_then_joined(join: JoinStore) -> None:
    f = Feed(join)
    f.label("a", T0 + 9_000, "0")
    assert counts(join) == {"early": 1, "early_total": 1}
    assert window(join, T0) == {}
    f.pred("a", T0 + 1_000, score=0.1)
    assert window(join, T0) == {"p": "1", "n": "1", "c:0|0": "1", "s:0:100": "1",
                                f"d:{log_bucket(8.0)}": "1"}
    assert counts(join) == {"early_total": 1, "joined": 1, "joined_early": 1}


def test_late_label_is_joined_and_counted_late(join: JoinStore) -> None:
    f = Feed(join)
    f.pred("a", T0 + 10, score=0.9)
    f.pred("b", T0 + 10 * MIN, score=0.9)  # the model's clock: a's window closed long ago
    f.label("a", T0 + 11 * MIN, "1")
    assert window(join, T0)["n"] == "1" and window(join, T0)["c:1|1"] == "1"
    assert counts(join) == {"joined": 1, "late": 1, "pending": 1}
    f.label("b", T0 + 11 * MIN, "1")  # b's window is open: not late
    assert counts(join) == {"joined": 2, "late": 1}


def test_duplicate_label_is_counted_not_joined_twice(join: JoinStore) -> None:
    f = Feed(join)
    f.pred("a", T0, score=0.7)
    f.label("a", T0 + 1_000, "1")
    f.label("a", T0 + 2_000, "0")  # same id again (another value, even)
    f.label("a", T0 + 3_000, "1", partition=1)  # from another partition of the labels topic
    assert window(join, T0)["n"] == "1" and window(join, T0)["c:1|1"] == "1"
    assert "c:1|0" not in window(join, T0)
    assert counts(join) == {"joined": 1, "duplicate": 2}
    # two early labels for one id: the second is the duplicate, the first is joined
    f.label("b", T0 + 1_000, "0")
    f.label("b", T0 + 2_000, "1")
    f.pred("b", T0, score=0.1)
    assert window(join, T0)["c:0|0"] == "1" and window(join, T0)["n"] == "2"
    assert counts(join) == {"joined": 2, "duplicate": 3, "early_total": 1, "joined_early": 1}


def test_duplicate_prediction_is_counted_once(join: JoinStore) -> None:
    f = Feed(join)
    f.pred("a", T0, score=0.7)
    f.pred("a", T0 + 500, score=0.1)  # a retried request, say
    assert window(join, T0)["p"] == "1"
    assert counts(join) == {"pending": 1, "duplicate_prediction": 1}
    f.label("a", T0 + 1_000, "1")
    f.pred("a", T0 + 2_000, score=0.1)  # after the join, too
    w = window(join, T0)
    assert (w["p"], w["n"], w["c:1|1"]) == ("1", "1", "1")  # the first prediction counts
    assert counts(join) == {"joined": 1, "duplicate_prediction": 2}


def test_orphan_label_counted_at_expiry(join: JoinStore) -> None:
    f = Feed(join)
    f.label("ghost", T0 + 1_000, "1")
    assert join.expire("bin") == 0  # nothing is past the TTL yet
    assert counts(join) == {"early": 1, "early_total": 1}
    f.pred("later", T0 + HOUR + 2 * SLICE, score=0.3)  # the clock moves past the TTL
    assert join.expire("bin") >= 1
    assert counts(join) == {"orphan": 1, "early_total": 1, "pending": 1}
    assert b"ghost" not in b"".join(entries(join, "bin").values())
    f.label("ghost", T0 + HOUR + 2 * SLICE, "1")  # too late: early again (a new orphan-to-be)
    assert counts(join)["early"] == 1


def test_expired_prediction_counted_per_window(join: JoinStore) -> None:
    f = Feed(join)
    f.pred("a", T0 + 100, score=0.6)
    f.pred("b", T0 + MIN + 100, score=0.6)
    f.pred("c", T0 + MIN + 200, score=0.6)
    f.label("c", T0 + MIN + 300, "1")
    f.pred("d", T0 + HOUR + 2 * SLICE)
    join.expire("bin")
    assert window(join, T0) == {"p": "1", "x": "1"}
    w1 = window(join, T0 + MIN)
    assert (w1["p"], w1["n"], w1["x"]) == ("2", "1", "1")
    assert counts(join) == {"expired": 2, "joined": 1, "pending": 1}
    join.expire("bin")  # idempotent
    assert counts(join)["expired"] == 2
    f.label("a", T0 + HOUR + 2 * SLICE, "1")  # the label after the TTL: early, not joined
    assert window(join, T0) == {"p": "1", "x": "1"}


def test_forget_erases_the_entry_and_drops_later_labels(join: JoinStore) -> None:
    f = Feed(join)
    f.pred("alice", T0, score=0.9, version="7")
    f.pred("bob", T0, score=0.9)
    hid = join.hid("bin", "alice")
    [before] = [v for k, v in entries(join, "bin").items() if k == hid]
    assert before.startswith(b"P") and b";7;" in before
    assert join.forget("bin", ["alice"]) == 1
    after = entries(join, "bin")
    assert after[hid] == b"F"  # only the marker: no time, version or score remain
    assert not any(k == hid and v != b"F" for k, v in after.items())
    assert all(b"alice" not in k + v for k, v in after.items())
    assert counts(join) == {"pending": 1}
    assert join.forget("bin", ["alice"]) == 0  # idempotent
    assert join.forget("bin", ["alice", "alice"]) == 0
    assert counts(join) == {"pending": 1}
    f.label("alice", T0 + 1_000, "1")
    f.pred("alice", T0 + 2_000, score=0.9)  # a replayed or retried prediction: dropped too
    assert counts(join) == {"pending": 1, "forgotten": 2}
    assert window(join, T0, version="7") == {"p": "1"}  # never joined
    # an early label forgotten before its prediction
    f.label("carol", T0 + 1_000, "0")
    assert join.forget("bin", ["carol", "never-seen"]) == 2
    f.pred("carol", T0 + 1_000)
    assert counts(join) == {"pending": 1, "forgotten": 3, "early_total": 1}
    with pytest.raises(KeyError):
        join.forget("no-such-model", ["x"])


def test_max_pending_evicts_the_oldest_slices(join: JoinStore) -> None:
    f = Feed(join)
    for i in range(4):
        f.pred(f"old{i}", T0 + i, model="small", score=0.4)
    for i in range(4):
        f.pred(f"new{i}", T0 + SLICE + i, model="small", score=0.4)
    assert counts(join, "small") == {"pending": 8}
    assert join.expire("small") == 1  # 8 > max_pending 5: the oldest slice goes
    assert counts(join, "small") == {"pending": 4, "expired": 4, "evicted": 4}
    assert window(join, T0, "small") == {"p": "4", "x": "4"}
    f.label("new0", T0 + SLICE + 10, "0", model="small")
    f.label("old0", T0 + SLICE + 10, "0", model="small")  # its prediction was evicted
    assert window(join, T0 + SLICE - SLICE % MIN, "small")["n"] == "1"
    assert "n" not in window(join, T0, "small")
    assert counts(join, "small") == {"pending": 3, "expired": 4, "evicted": 4, "joined": 1,
                                     "early": 1, "early_total": 1}


def test_replay_of_the_same_records_changes_nothing(join: JoinStore) -> None:
    rnd = random.Random(3)
    preds = [JoinItem(i, "bin", f"r{i}", T0 + i * 997, "1", "", repr(rnd.random()),
                      "1" if i % 10 == 0 else "")
             for i in range(300)]
    labels = [JoinItem(i, "bin", f"r{rnd.randrange(400)}", T0 + 60_000 + i, label=str(i % 2))
              for i in range(200)]

    def state() -> dict[bytes, object]:
        c = join.client
        out: dict[bytes, object] = {}
        for key in c.scan_iter(match=join.keys.base("bin") + "*"):
            kind = c.type(key)
            out[key] = (c.hgetall(key) if kind == b"hash" else c.smembers(key)
                        if kind == b"set" else c.zrange(key, 0, -1) if kind == b"zset"
                        else c.xlen(key))
        return out

    assert join.put("p", 0, preds[:150]) == 150
    assert join.put("l", 3, labels[:120]) == 120
    assert join.put("p", 0, preds[150:]) == 150
    assert join.put("l", 3, labels[120:]) == 80
    first = state()
    # a worker killed after the join write and before its commit / checkpoint replays
    assert join.put("p", 0, preds) == 0
    assert join.put("l", 3, labels[50:]) == 0
    assert join.put("p", 0, preds[100:]) == 0
    assert state() == first
    # overlapping batches: only the new tail is applied
    more = [JoinItem(300 + i, "bin", f"s{i}", T0, "1", "", "0.5") for i in range(5)]
    assert join.put("p", 0, preds[290:] + more) == 5
    assert join.put("p", 1, preds[:3]) == 3  # the same offsets of another partition are new


def test_inline_label_in_a_prediction(join: JoinStore) -> None:
    f = Feed(join)
    f.pred("a", T0 + 10, score=0.3, label="1")
    assert window(join, T0) == {"p": "1", "n": "1", "c:0|1": "1", "s:1:300": "1", "d0": "1"}
    assert counts(join) == {"joined": 1}
    f.label("a", T0 + 5_000, "0")  # the labels topic carries it too: a duplicate
    assert counts(join) == {"joined": 1, "duplicate": 1}
    # an early label and then a prediction carrying its own label: joined once
    f.label("b", T0 + 20, "0")
    f.pred("b", T0 + 30, score=0.3, label="0")
    w = window(join, T0)
    assert (w["p"], w["n"], w["c:0|0"]) == ("2", "2", "1")
    assert counts(join) == {"joined": 2, "duplicate": 2, "early_total": 1}


def test_multiclass_and_regression_outcomes(join: JoinStore) -> None:
    f = Feed(join)
    f.pred("a", T0, model="multi", score=None, pclass="cat")
    f.label("a", T0 + 1, "dog", model="multi")
    f.pred("b", T0, model="reg", score=10.0)
    f.label("b", T0, "7.5", model="reg")
    f.pred("c", T0, model="reg", score=1.0)
    f.label("c", T0, "1.0", model="reg")
    assert window(join, T0, "multi")["c:cat|dog"] == "1"
    w = window(join, T0, "reg")
    assert (float(w["sae"]), float(w["sse"]), float(w["se"])) == (2.5, 6.25, 2.5)
    assert (w[f"e+:{log_bucket(2.5)}"], w["e0"], w["d0"], w["n"]) == ("1", "1", "2", "2")


def test_separator_in_class_names(join: JoinStore) -> None:
    f = Feed(join)
    f.pred("a", T0, model="multi", score=None, pclass="x;y")
    f.label("a", T0 + 1, "p;q", model="multi")
    assert window(join, T0, "multi")["c:x;y|p;q"] == "1"


def test_huge_regression_error_is_no_poison(join: JoinStore) -> None:
    f = Feed(join)
    f.pred("a", T0, model="reg", score=1.0)
    f.pred("b", T0, model="reg", score=1e200)
    labels = [JoinItem(0, "reg", "a", T0, label="0.5"), JoinItem(1, "reg", "b", T0, label="0.0")]
    for _ in range(2):  # the runner's retry
        with contextlib.suppress(redis.exceptions.ResponseError):
            join.put("l", 0, labels)
    assert window(join, T0, "reg")["n"] == "1"  # a counted once; b's error is not scorable
    assert join.counters("reg")["unscorable"] == 1


# ------------------------------------------------------------------ Lua vs Python buckets
def canonical(fields: dict[str, str], kinds: str) -> dict[str, int]:
    """Histogram fields with their bucket number as the reader parses it (``int``), so a
    bucket written ``-0`` would still compare equal to bucket 0 (test_bucket_zero_... checks
    that it is not)."""
    out: Counter[str] = Counter()
    for k, v in fields.items():
        if k[0] in kinds and k not in ("sae", "sse", "se"):
            head, sep, num = k.rpartition(":")
            out[f"{head}:{int(num)}" if sep else k] += int(v)
    return dict(out)


def test_bucket_zero_is_written_canonically(join: JoinStore) -> None:
    f = Feed(join)
    f.pred("a", T0, model="reg", score=10.99)
    f.label("a", T0 + 990, "10.0", model="reg")  # error 0.99, delay 0.99 s: bucket 0
    w = window(join, T0, "reg")
    assert log_bucket(0.99) == 0 and w.get("e+:0") == "1" and w.get("d:0") == "1", w


def test_lua_buckets_agree_with_python(join: JoinStore) -> None:
    """A few thousand random scores, errors and delays (plus values on bucket edges)
    through the Lua: its histogram fields equal what sketches.performance computes."""
    rnd = random.Random(20261123)
    edges = [k / 1000 for k in range(0, 1001, 7)] + [math.nextafter(k / 1000, 0)
                                                     for k in range(1, 1001, 13)]
    scores = [rnd.random() for _ in range(2500)] + edges
    b_items, b_labels = [], []
    want: Counter[str] = Counter()
    for i, s in enumerate(scores):
        lab = rnd.choice("01")
        delay_ms = rnd.choice([0, 1, 2, rnd.randrange(3, 10**9)])
        b_items.append(JoinItem(i, "bin", f"b{i}", T0, "1", "", repr(s)))
        b_labels.append(JoinItem(i, "bin", f"b{i}", T0 + delay_ms, label=lab))
        want[f"s:{lab}:{score_bin(s)}"] += 1
        d = delay_ms / 1000
        want["d0" if d <= 1e-3 else f"d:{log_bucket(d)}"] += 1
    join.put("p", 0, b_items)
    join.put("l", 0, b_labels)
    got = window(join, T0)
    assert canonical(got, "sd") == dict(want)

    r_items, r_labels = [], []
    want = Counter()
    errors = [rnd.choice([-1, 1]) * math.exp(rnd.uniform(-25, 25)) for _ in range(2500)]
    errors += [GAMMA**i for i in range(-300, 300, 7)] + [-(GAMMA**i) for i in range(-300, 300, 11)]
    errors += [0.0, 1e-9, -1e-9, 1e-10]
    for i, e in enumerate(errors):
        label = rnd.uniform(-100, 100)
        pred = label + e
        r_items.append(JoinItem(i, "reg", f"r{i}", T0, "1", "", repr(pred)))
        r_labels.append(JoinItem(i, "reg", f"r{i}", T0, label=repr(label)))
        err = pred - label  # what the Lua computes from the same two doubles
        want["e0" if abs(err) <= 1e-9 else
             f"e{'+' if err > 0 else '-'}:{log_bucket(abs(err))}"] += 1
    join.put("p", 0, r_items)
    join.put("l", 0, r_labels)
    got = window(join, T0, "reg")
    assert canonical(got, "e") == dict(want)
    assert math.isclose(float(got["sae"]), sum(abs(e) for e in errors), rel_tol=1e-9)
