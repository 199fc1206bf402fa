"""The Redis state store against a real redis-server: per-model watermarks and counters
round-trip, however many models a partition holds."""

from __future__ import annotations

import pytest

from streams.core import Checkpoint
from streams.windows import Counters
from tests.streamutil import T0, store_for

pytestmark = pytest.mark.integration


def test_a_checkpoint_with_twenty_thousand_models_round_trips(redis_url: str,
                                                               key_prefix: str) -> None:
    """(Lua's unpack() limit made such a write fail, and the worker with it.)"""
    store = store_for(redis_url, key_prefix, "t")
    snap = store.load(0)
    models = [f"m{i:05d}" for i in range(20_000)]
    cp = Checkpoint(0, snap.epoch, 41, T0 + 20_000, Counters(ok={m: 1 for m in models}),
                    {}, {}, watermarks={m: T0 + i for i, m in enumerate(models)})
    store.write(cp)
    back = store.read(0, min_start_ms=1 << 62)
    assert back.applied_offset == 41 and back.watermark_ms == T0 + 20_000
    assert back.watermarks == dict(cp.watermarks)
    assert back.counters.ok == cp.counters.ok


def test_measurement_windows_end_at_each_models_own_watermark(redis_url: str,
                                                              key_prefix: str) -> None:
    """One model's clock does not move another's window; an idle partition (old
    watermark) neither holds a model back nor pushes it."""
    from streams.reader import WindowReader

    hour = 3_600_000
    store = store_for(redis_url, key_prefix, "t")
    busy, idle = store.load(0), store.load(1)
    store.write(Checkpoint(0, busy.epoch, 9, T0 + hour, Counters(ok={"a": 5, "b": 5}), {}, {},
                           watermarks={"a": T0 + hour, "b": T0}))
    store.write(Checkpoint(1, idle.epoch, 3, T0 - 2 * hour, Counters(ok={"a": 1}), {}, {},
                           watermarks={"a": T0 - 2 * hour}))
    reader = WindowReader(store)
    assert reader.watermarks(["a", "b", "never-seen"]) == {"a": T0 + hour, "b": T0}
    # state written before per-model watermarks lends its partition watermark to all
    legacy = store.load(2)
    store.write(Checkpoint(2, legacy.epoch, 1, T0 + 2 * hour, Counters(ok={"a": 1}), {}, {}))
    assert reader.watermarks(["a", "b"]) == {"a": T0 + 2 * hour, "b": T0 + 2 * hour}


def test_the_reader_rereads_only_windows_that_changed(redis_url: str, key_prefix: str) -> None:
    """Incremental evaluation input: an unchanged window is served from the reader's cache;
    a window a partition rewrote is merged again from all its partition blobs."""
    import numpy as np

    from sketches.profile import DatasetProfile
    from streams.reader import WindowReader
    from streams.windows import WindowKey

    minute = 60_000
    rng = np.random.default_rng(3)
    store = store_for(redis_url, key_prefix, "t")
    snaps = {p: store.load(p) for p in (0, 1)}
    gens = {0: 0, 1: 0}

    def write(p: int, starts: list[int], n: int) -> None:
        windows = {}
        for start in starts:
            prof = DatasetProfile()
            prof.update({"x": rng.normal(size=n)}, n)
            windows[WindowKey("m", "1", start)] = prof.to_bytes()
        end = max(starts) + 5 * minute - 1
        store.write(Checkpoint(p, snaps[p].epoch, gens[p], end, Counters(ok={"m": 1}), windows,
                               {k: k.start_ms + 5 * minute for k in windows},
                               watermarks={"m": end}, generation=gens[p]))
        gens[p] += 1

    starts = [T0 + i * 5 * minute for i in range(12)]
    write(0, starts, 100)
    write(1, starts, 50)
    reader = WindowReader(store)
    first = reader.measurements({"m": 60 * minute})["m"]
    assert reader.reads == 24 and first.versions["1"].rows == 12 * 150
    again = reader.measurements({"m": 60 * minute})["m"]
    assert reader.reads == 0 and again.versions["1"].rows == 12 * 150  # all from the cache
    write(1, [starts[-1]], 70)  # partition 1 rewrites the current window
    changed = reader.measurements({"m": 60 * minute})["m"]
    assert reader.reads == 2  # that window, from both partitions
    assert changed.versions["1"].rows == 11 * 150 + 100 + 70
    fresh = WindowReader(store).measurements({"m": 60 * minute})["m"]
    assert fresh.versions["1"].rows == changed.versions["1"].rows  # same as a full read
    assert fresh.start_ms == changed.start_ms and fresh.end_ms == changed.end_ms
