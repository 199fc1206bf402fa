"""The reader's kept merges across many slides, against a real redis-server: the older
windows' merge is rebuilt ahead of each slide a few blobs per call (the *ahead* merge),
and every measurement equals a full re-merge of the stored blobs — with late events
re-writing older open windows, compaction of closed ones, versions and models that
appear and disappear, and ahead budgets from none to everything."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
import redis

from alerts.keys import AlertKeys
from alerts.shards import Fence
from sketches.numeric import NumericProfile
from sketches.profile import DatasetProfile
from streams.compaction import Compactor, ModelSpan
from streams.core import Checkpoint
from streams.kept import Merged
from streams.reader import WindowReader
from streams.state import RedisStateStore
from streams.tiers import TierStore
from streams.windows import Counters, WindowKey
from tests.streamutil import T0

pytestmark = pytest.mark.integration
WINDOW, RETENTION, MEASURE = 300_000, 900_000, 1_800_000  # 6 windows measured, 3 open late
SPAN = ModelSpan(WINDOW, RETENTION, MEASURE)
PARTITIONS = 3
QS = [0.1, 0.25, 0.5, 0.75, 0.9]


class Workers:
    """Partitions written through the real store, as workers checkpoint them; keeps every
    value written per (model, version, window) for the exact answer."""

    def __init__(self, redis_url: str, prefix: str) -> None:
        self.client = redis.Redis.from_url(redis_url)
        self.store = RedisStateStore(self.client, prefix=prefix, topic="t", horizon_ms=MEASURE)
        self.epochs = {p: self.store.load(p).epoch for p in range(PARTITIONS)}
        self.gens = dict.fromkeys(range(PARTITIONS), 0)
        self.rng = np.random.default_rng(7)
        self.open: dict[tuple[int, WindowKey], DatasetProfile] = {}
        self.values: dict[WindowKey, list[np.ndarray]] = defaultdict(list)
        self.marks: dict[str, int] = {}

    def write(self, p: int, windows: dict[WindowKey, int], mark: int) -> None:
        """Add rows (key -> how many) to windows on ``p``; each stored whole (everything
        the partition took of it so far), as a worker's checkpoint does."""
        blobs = {}
        for key, rows in windows.items():
            x = self.rng.normal(key.start_ms / WINDOW % 7, 1, rows)
            self.values[key].append(x)
            prof = self.open.setdefault((p, key), DatasetProfile())
            prof.update({"x": x}, rows)
            blobs[key] = prof.to_bytes()
        models = {k.model for k in windows}
        for m in models:
            self.marks[m] = max(self.marks.get(m, mark), mark)
        self.store.write(Checkpoint(p, self.epochs[p], self.gens[p], mark, Counters(), blobs,
                                    {k: k.start_ms + WINDOW for k in blobs},
                                    watermarks=dict.fromkeys(models, mark),
                                    generation=self.gens[p]))
        self.gens[p] += 1

    def truth(self, model: str) -> dict[str, np.ndarray]:
        """version -> every value written to the model's measurement window."""
        end = self.marks[model]
        out: dict[str, list[np.ndarray]] = defaultdict(list)
        for key, xs in self.values.items():
            if key.model == model and end - MEASURE <= key.start_ms <= end:
                out[key.version] += xs
        return {v: np.sort(np.concatenate(xs)) for v, xs in out.items()}


def same(got: Merged, want: Merged, truth: dict[str, np.ndarray]) -> None:
    """``got`` measures what a full re-merge does (``want``) and what was written."""
    assert (got.start_ms, got.end_ms) == (want.start_ms, want.end_ms)
    assert sorted(got.versions) == sorted(want.versions) == sorted(truth)
    for v, prof in got.versions.items():
        other = want.versions[v]
        assert prof.rows == other.rows == len(truth[v])
        a, b = prof.columns["x"], other.columns["x"]
        assert isinstance(a, NumericProfile) and isinstance(b, NumericProfile)
        assert a.count == b.count == len(truth[v])
        if a.rank_error == 0.0 and b.rank_error == 0.0:  # exact sketches: same values
            assert a.quantiles(QS) == b.quantiles(QS)
        eps = a.rank_error + b.rank_error
        for x, y in zip(a.quantiles(QS), b.quantiles(QS), strict=True):
            # each within its rank error of the written values: the two within both
            lo, hi = np.searchsorted(truth[v], [min(x, y), max(x, y)])
            assert (hi - lo) / len(truth[v]) <= eps + 2 / len(truth[v])
        for q, x in zip(QS, a.quantiles(QS), strict=True):
            lo, hi = np.searchsorted(truth[v], [x, x], side="left"), np.searchsorted(
                truth[v], [x, x], side="right")
            assert lo[0] / len(truth[v]) - a.rank_error - 1e-9 <= q
            assert q <= hi[0] / len(truth[v]) + a.rank_error + 1e-9


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_slides_match_a_full_re_merge(redis_url: str, key_prefix: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    prefix = f"{key_prefix}-{seed}"
    w = Workers(redis_url, prefix)
    budget = [0, 2, 5, 1 << 20][seed % 4]  # blobs per call for the ahead merges
    reader = WindowReader(w.store, ahead_blobs=budget)
    greedy = WindowReader(w.store, ahead_blobs=1 << 20)  # its ahead merges always whole
    fence = Fence(w.client, prefix)
    comp = Compactor(w.store, TierStore(w.client, prefix=prefix, topic="t"))
    token = fence.next_token(0, "test")
    live = {"m0", "m1"}
    mark = T0 + 5 * WINDOW
    clean_slides = 0
    for step in range(80):
        slid = rng.random() < 0.5
        mark += WINDOW if slid else int(rng.integers(0, WINDOW // 3))
        if step == 20:
            live.add("m2")  # a model appears
        if step == 45:
            live.discard("m0")  # and one stops (its windows stay until they expire)
        newest = mark - mark % WINDOW
        late = False
        for p in range(PARTITIONS):
            windows: dict[WindowKey, int] = {}
            for model in sorted(live):
                version = "2" if model == "m1" and 30 <= step < 40 else "1"
                windows[WindowKey(model, version, newest)] = int(rng.integers(5, 120))
                if rng.random() < 0.15:  # a late event re-writes an older, still open window
                    back = newest - int(rng.integers(1, RETENTION // WINDOW)) * WINDOW
                    windows[WindowKey(model, "1", back)] = int(rng.integers(1, 30))
                    late = True
            w.write(p, windows, mark)
        compacted = rng.random() < 0.2
        if compacted:
            comp.run({m: (SPAN, token) for m in w.marks}, AlertKeys(prefix).fence)
        asked = {m: MEASURE for m in w.marks}
        ready = {r: r.behind + r.held == 0 for r in (reader, greedy)}  # ahead merges whole
        for r in (reader, greedy):
            got = r.measurements(asked)
            want = WindowReader(w.store).measurements(asked)  # a full re-merge
            assert sorted(got) == sorted(want)
            for model in got:
                same(got[model], want[model], w.truth(model))
            if slid and not late and not compacted and ready[r] and step > 0:
                # the slide took the ahead merges: only the new windows' blobs were read
                assert r.reads - r.ahead_reads <= PARTITIONS * len(live)
                clean_slides += 1
        assert greedy.behind == 0  # (but for merges holding for stragglers after a slide)
    assert clean_slides >= 4, clean_slides  # (both readers' clean slides counted)


def test_stragglers_in_the_previous_window_read_that_window_only(redis_url: str,
                                                                  key_prefix: str) -> None:
    """Right after the measurement moved on, events keep arriving for the window that was
    the newest (producers' batches, lagging partitions). Until ``HOLD`` calls pass
    without one, the reader holds the merge of the other older windows, so each call
    reads the newest and the previous window's blobs — not every older window's — and
    measures what a full re-merge does; then the ahead merge is built as before."""
    from streams.kept import HOLD

    w = Workers(redis_url, f"{key_prefix}-strag")
    reader = WindowReader(w.store, ahead_blobs=1 << 20)
    mark = T0 + 5 * WINDOW
    asked = {"m": MEASURE}

    def step(windows: list[int], at: int) -> None:
        for p in range(PARTITIONS):
            w.write(p, {WindowKey("m", "1", s): 20 for s in windows}, at)
        got = reader.measurements(asked)
        same(got["m"], WindowReader(w.store).measurements(asked)["m"], w.truth("m"))

    step([mark - mark % WINDOW - back * WINDOW for back in range(6)], mark)  # six windows
    step([mark - mark % WINDOW], mark)
    assert reader.behind == 0 and reader.held == 0  # ahead merge whole
    mark += WINDOW  # the measurement moves on (nothing drops out yet: 6 of 7 windows)
    newest = mark - mark % WINDOW
    step([newest], mark)
    assert reader.held > 0
    for _ in range(HOLD + 2):  # stragglers for the previous window, longer than the hold
        step([newest, newest - WINDOW], mark)
        assert reader.reads == 2 * PARTITIONS  # the newest and the previous window only
        assert reader.held > 0  # the ahead merge waits: it would hold the previous window
    for _ in range(HOLD):  # quiet: the hold runs out and the ahead merge is built again
        step([newest], mark)
    assert reader.held == 0 and reader.behind == 0
