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
