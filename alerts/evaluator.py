"""The evaluator: measurement windows → drift reports → alert state machine → publishers.

Models are sharded over evaluator processes (:mod:`alerts.shards`): each
:meth:`Evaluator.run_once` (called on an interval) evaluates the models its
:class:`~alerts.shards.Owner` owns now; for every one of them:

1. asks the injected :class:`WindowSource` for the merged profile of the model's
   measurement window (event time: it ends at the model's watermark) — only for models
   whose windows changed (``dirty``, from the workers' notices) or on a full sweep; the
   others reuse the last measurement, and an unchanged measurement and reference reuse
   the last comparison (the alert timers still run on the wall clock);
2. compares it with the model's reference (:class:`ReferenceSource`, per version with a
   fallback to ``default``) under the model's :class:`~sketches.rules.DriftRules`;
3. steps one :class:`~alerts.machine.Track` per (column, metric) — alert id
   ``model/column/metric`` — and publishes one message per state change (plus repeats);
4. stores the tracks and the :class:`~alerts.results.ModelResult` in Redis in one
   fenced write (:class:`~alerts.shards.Fence`), so a restarted or new owner neither
   re-fires nor forgets, and a replaced one cannot overwrite its successor.

Messages are published *before* the tracks are stored: an owner that dies in between
makes its successor publish the same transition again (at-least-once; consumers dedupe
on ``id`` + ``state`` + ``since``) — never a lost alert. The Kafka publisher of a sharded
evaluator is transactional and fenced by the group generation (:mod:`alerts.shards`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import msgspec
import redis

from alerts import operational, performance
from alerts.health import HealthRules, HealthSource, model_checks
from alerts.keys import AlertKeys
from alerts.machine import Policy, State, Track, step, track_to_bytes
from alerts.message import Alert
from alerts.operational import IncidentSource
from alerts.outcome import (
    Check,
    build_alert,
    scoped_result,
)
from alerts.performance import PerformanceConfig, PerformanceSource
from alerts.publish import Notifier, PublishError
from alerts.results import (
    ModelResult,
    result_from_bytes,
    result_to_bytes,
)
from alerts.scopes import (
    Compared,
    Scope,
    compare,
    scopes_of,
    split_id,
    superseded,
)
from alerts.shards import Owner
from alerts.sources import (
    Housekeeping,
    Measurement,
    Prefetching,
    Publisher,
    ReferenceSource,
    WindowReferenceSource,
    WindowSource,
)
from alerts.tracks import TrackReader
from sketches import segments
from sketches.baseline import ReferenceChoice
from sketches.cbpe import EstimatedPerformance
from sketches.errors import StateFormatError
from sketches.reference import Reference
from sketches.rules import DriftRules

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelRules:
    """How one model is evaluated (built from the models file by the CLI)."""

    model: str
    measure_ms: int = 3_600_000
    rules: DriftRules = field(default_factory=DriftRules)
    policy: Policy = field(default_factory=Policy)
    drift_severity: str = "critical"
    quality_severity: str = "warning"
    ranges: Mapping[str, tuple[float | None, float | None]] = field(default_factory=dict)
    """column -> allowed [lo, hi] (None: unbounded); checked as metric ``out_of_range``."""
    max_out_of_range: float = 0.0
    """Share of values outside their range that may be tolerated (0: any value breaches)."""
    window_ms: int = 300_000
    retention_ms: int = 3_600_000
    """The model's tumbling window and late-event retention (from the models file): when
    its windows are closed, for compaction."""
    compare_versions: tuple[str, str] | None = None
    """Canary / shadow comparison: (baseline version, canary version) (alerts.scopes)."""
    performance: PerformanceConfig | None = None
    """Ground truth (``[models.M.performance]``): realized / estimated performance,
    label health and change detectors (:mod:`alerts.performance`)."""
    health: HealthRules = field(default_factory=HealthRules)
    """Operational health (``[models.M.health]``, :mod:`alerts.health`)."""
    reference: ReferenceChoice = field(default_factory=ReferenceChoice)
    """``[models.M.reference]``: the training reference or a trailing production
    baseline (wired by the CLI into the :class:`ReferenceSource`)."""


class Evaluator:
    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str,
        models: Sequence[ModelRules],
        windows: WindowSource,
        references: ReferenceSource,
        publishers: Sequence[Publisher],
        owner: Owner,
        notifiers: Sequence[Notifier] = (),
        incidents: IncidentSource | None = None,
        topic: str = "predictions",
        housekeeping: Housekeeping | None = None,
        performance: PerformanceSource | None = None,
        id_key: bytes = b"",
        health: HealthSource | None = None,
    ) -> None:
        """``publishers`` are the durable sinks (the alerts topic): one that raises stops the
        evaluation of that model before its state is stored, so the same transition is
        published again next time (at-least-once). ``notifiers`` (the webhook) only take
        the alerts for delivery on their own thread; their failures never hold the topic
        back nor make it repeat a message."""
        self._client = client
        self._prefix = prefix
        self._keys = AlertKeys(prefix)
        self._tracks = TrackReader(client, self._keys)
        self.models = list(models)
        self._windows = windows
        self._references = references
        self._publishers = list(publishers)
        self._notifiers = list(notifiers)
        self.owner = owner
        self.is_leader = False
        """Owns at least one shard (reports the global figures when it owns shard 0)."""
        self._measured: dict[str, Measurement] = {}
        # (model, scope) -> (measurement, comparison): reused while neither the measurement
        # nor the reference changed; model -> (measurement, reference, CBPE estimate)
        self._compared: dict[tuple[str, str], tuple[Measurement, Compared]] = {}
        self._estimates: dict[str, tuple[Measurement, Reference | None,
                                         EstimatedPerformance | None]] = {}
        self._incidents = incidents
        self._topic = topic
        self._housekeeping = housekeeping
        self._performance = performance
        self._id_key = id_key
        self._health = health
        """Authenticates the stored detector state (the label join's id-hash key)."""

    # -- keys ----------------------------------------------------------------------------
    def tracks_key(self, model: str) -> str:
        return self._keys.tracks(model)

    def result_key(self, model: str) -> str:
        return self._keys.result(model)

    # -- reading (any worker, `driftline status`) -----------------------------------------
    def results(self) -> list[ModelResult]:
        return load_results(self._client, self._prefix, [m.model for m in self.models])

    # -- the loop body ----------------------------------------------------------------------
    def run_once(self, now: float, dirty: Iterable[str] | None = None,
                 compact: bool = False) -> list[Alert]:
        """Evaluate the models this evaluator owns; the alerts published. ``dirty``: the
        models whose windows changed since the last call (None: re-read every model).
        ``compact``: then compact and roll up their closed windows (``housekeeping``)."""
        owned = [cfg for cfg in self.models if self.owner.token(cfg.model) is not None]
        self.is_leader = self.owner.owns_any()
        gone = set(self._measured) - {cfg.model for cfg in owned}
        for model in gone:  # moved to another shard owner
            self._measured.pop(model, None)
            self._estimates.pop(model, None)
        for key in [k for k in self._compared if k[0] in gone]:
            del self._compared[key]
        if gone:
            self._windows.forget(gone)
        wanted = None if dirty is None else set(dirty)
        reread = {cfg.model: cfg.measure_ms for cfg in owned
                  if wanted is None or cfg.model in wanted or cfg.model not in self._measured}
        if reread:
            found = self._windows.measurements(reread)
            for model in reread:
                if model in found:
                    self._measured[model] = found[model]
        if isinstance(self._references, Prefetching):  # one round trip, not one per model
            self._references.prefetch((cfg.model, v) for cfg in owned
                                      if (mm := self._measured.get(cfg.model)) is not None
                                      for v in mm.versions if segments.SEP not in v)
        tracks = self._tracks.load([cfg.model for cfg in owned if cfg.model in self._measured])
        published: list[Alert] = []
        for cfg in owned:
            m = self._measured.get(cfg.model)
            if m is None:
                continue
            token = self.owner.token(cfg.model)
            if token is None:  # the shard was revoked during this evaluation
                log.warning("model %s moved to another evaluator mid-evaluation; skipping",
                            cfg.model)
                continue
            try:
                published += self._evaluate(cfg, m, token, now, tracks[cfg.model])
            except PublishError as exc:  # fenced or broker away: nothing stored, retried
                log.warning("model %s: alerts not published, state kept for the next "
                            "evaluation: %s", cfg.model, exc)
        if self._incidents is not None:
            token = self.owner.token(operational.MODEL)
            if token is not None:
                published += self._evaluate_operations(self._incidents, token, now)
        if compact and self._housekeeping is not None:
            spans = {cfg.model: (cfg.window_ms, cfg.retention_ms, cfg.measure_ms, token)
                     for cfg in owned if (token := self.owner.token(cfg.model)) is not None}
            self._housekeeping.compact(spans, self._keys.fence)
        if compact and self._performance is not None:
            for cfg in owned:  # the label join's waiting entries past their TTL
                if cfg.performance is not None:
                    self._performance.expire(cfg.model)
        return published

    def _evaluate_operations(self, incidents: IncidentSource, token: int, now: float
                             ) -> list[Alert]:
        """Operational alerts from the workers' incident notes (:mod:`alerts.operational`)."""
        tracks = self._tracks.load_one(operational.MODEL)
        found = operational.checks(incidents.incidents(), now, self._topic, tracks)
        emitted = operational.step_all(found, tracks, now, Policy())
        if emitted:
            self._send(emitted, operational.MODEL)
        self.owner.fence.write(operational.MODEL, token, hashes={
            self.tracks_key(operational.MODEL): {k: track_to_bytes(t) for k, t in tracks.items()}})
        return emitted

    def _send(self, emitted: list[Alert], model: str) -> None:
        for publisher in self._publishers:  # raises: state not stored, retried next time
            publisher.publish(emitted)
        for notifier in self._notifiers:  # queued; delivered and retried on its own
            try:
                notifier.notify(emitted)
            except Exception:  # a broken sink must not block the others
                log.exception("model %s: notifier %r refused alerts", model, notifier)

    def _evaluate(self, cfg: ModelRules, m: Measurement, token: int, now: float,
                  tracks: dict[str, Track]) -> list[Alert]:
        compared = [self._compare(cfg, m, scope) for scope in scopes_of(cfg, m)]
        main = compared[0]
        version = main.scope.version
        est = self._estimates.get(cfg.model)
        if est is None or est[0] is not m or est[1] is not main.reference:
            self._estimates[cfg.model] = est = (m, main.reference, (
                performance.estimated(cfg.performance, main.reference, main.current)
                if cfg.performance is not None and main.current is not None else None))
        perf = self._evaluate_performance(cfg, m, main.reference, est[2], now)
        ops = model_checks(self._health, cfg.health, model=cfg.model, window_ms=cfg.window_ms,
                           now=now)  # every evaluation: `stale` grows on the wall clock
        if all(c.report is None for c in compared) and perf is None and not ops:
            result = ModelResult(cfg.model, version, "no_reference", m.start_ms / 1000,
                                 m.end_ms / 1000, main.rows, now,
                                 latency_ms=main.latency)  # fmt: skip
            self._store(cfg.model, token, tracks, result)
            return []
        checks = [c for cmp in compared for c in cmp.checks]
        checks += (perf.checks if perf is not None else []) + ops
        ids = {c.alert_id(cfg.model) for c in checks}
        multi = any(c.scope.suffix.startswith("@version=") and c.scope.compare_to is None
                    for c in compared)
        for aid in superseded(tracks, ids, multi):  # the other version mode: resolve them
            column, metric, suffix = split_id(aid)
            checks.append(Check(column, metric, None, 0.0, False, scope=suffix))
        emitted: list[Alert] = []
        firing: dict[str, str] = {}
        for check in checks:
            aid = check.alert_id(cfg.model)
            old = tracks.get(aid, Track())
            new, emit = step(old, check.breached, now, cfg.policy)
            severity = (cfg.quality_severity if check.quality or check.kind == "operational"
                        else cfg.drift_severity)
            if emit is not None:
                emitted.append(build_alert(cfg, version, m, check, new, old, emit, severity, now,
                                           main.rows))  # fmt: skip
            if new != Track():
                tracks[aid] = new
            else:
                tracks.pop(aid, None)
            if new.state is State.FIRING:
                firing[aid] = severity
        if emitted:
            self._send(emitted, cfg.model)
        result = scoped_result(cfg.model, m, compared, now, firing)
        extra: dict[str, bytes] = {}
        if perf is not None:
            result = msgspec.structs.replace(result, performance=perf.result)
            if perf.detector is not None:
                extra[self._keys.detector(cfg.model)] = perf.detector.to_bytes(self._id_key)
        if not self._store(cfg.model, token, tracks, result, extra):
            log.warning("model %s: a newer evaluator owns it; state not stored", cfg.model)
        elif perf is not None and perf.detector is not None and self._performance is not None:
            self._performance.trim(cfg.model, perf.detector.position)  # consumed and stored
        return emitted

    def _compare(self, cfg: ModelRules, m: Measurement, scope: Scope) -> Compared:
        """:func:`alerts.scopes.compare`, reused while the measurement and the reference
        are the same objects (the merged profile itself is not kept)."""
        key = (cfg.model, scope.suffix)
        refs = self._references
        reference = (None if scope.compare_to is not None
                     else refs.for_window(cfg.model, scope.version, m.start_ms)
                     if isinstance(refs, WindowReferenceSource)
                     else refs.get(cfg.model, scope.version))
        if reference is not None and scope.segment is not None:
            reference = reference.segment(*scope.segment)
        cached = self._compared.get(key)
        if cached is not None and cached[0] is m and cached[1].reference is reference \
                and cached[1].scope == scope:
            return cached[1]
        done = compare(cfg, m, scope, lambda _v: reference)
        self._compared[key] = (m, dataclasses.replace(done, current=None))
        return done

    def _evaluate_performance(self, cfg: ModelRules, m: Measurement, reference: Reference | None,
                              est: EstimatedPerformance | None, now: float
                              ) -> performance.PerformanceOutcome | None:
        if cfg.performance is None or self._performance is None:
            return None
        blob = self._client.get(self._keys.detector(cfg.model))
        return performance.evaluate(
            cfg.performance, cfg.model, self._performance, end_ms=m.end_ms,
            measure_ms=cfg.measure_ms, reference=reference, estimate=est,
            detector=blob if isinstance(blob, bytes) else None, key=self._id_key, now=now)

    def _store(self, model: str, token: int, tracks: dict[str, Track], result: ModelResult,
               extra: Mapping[str, bytes] | None = None) -> bool:
        return self.owner.fence.write(
            model, token,
            hashes={self.tracks_key(model): {k: track_to_bytes(t) for k, t in tracks.items()}},
            values={self.result_key(model): result_to_bytes(result), **(extra or {})},
        )


def load_results(client: redis.Redis, prefix: str, models: Sequence[str]) -> list[ModelResult]:
    """The latest stored evaluation of each model (models never evaluated are left out)."""
    if not models:
        return []
    keys = AlertKeys(prefix)
    pipe = client.pipeline(transaction=False)  # not MGET: the keys span cluster slots
    for m in models:
        pipe.get(keys.result(m))
        pipe.get(keys.legacy_result(m))
    replies = pipe.execute()
    blobs: list[bytes | None] = [new or old for new, old in zip(replies[::2], replies[1::2],
                                                                 strict=True)]
    out: list[ModelResult] = []
    for model, blob in zip(models, blobs, strict=True):
        if blob is None:
            continue
        try:
            out.append(result_from_bytes(blob))
        except StateFormatError as exc:
            log.error("model %s: unreadable stored result: %s", model, exc)
    return out
