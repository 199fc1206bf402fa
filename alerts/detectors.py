"""Concept-drift detectors on a model's error stream: River's ADWIN, DDM, Page-Hinkley.

The label join appends one outcome per joined (prediction, label) pair to the model's
outcome stream (0/1 for a classifier, |error| for a regression). The evaluator that owns
the model feeds the outcomes after its stored position to one detector per version and
stores the detectors *with* that position in its fenced write (:mod:`alerts.shards`), so
every outcome is seen exactly once across restarts and shard moves; the stream is then
trimmed up to the position.

The stream is also capped (``streams.join.STREAM_MAXLEN``): an evaluator that falls
further behind than that loses the oldest outcomes it had not read. Each outcome carries
its number ``n`` (1, 2, ... per model), so a jump in ``n`` between the last outcome read
and the next is that many outcomes trimmed unread: counted in ``trimmed`` (stored with the
position, so counted once) and exported as ``driftline_labels_total{outcome="trimmed"}``.
A fresh state counts from outcome 1 (what was trimmed before any evaluation is counted
too); a state read from format 1, or reset after an unreadable one, starts counting at
the first numbered outcome it reads.

A detection is held as a breached ``concept_drift`` check for ``hold_s`` seconds (wall
clock), then resolves unless the detector fires again.

State bytes (format 2; format 1, without ``last_n`` / ``trimmed``, is still read): magic +
version + an HMAC-SHA256 (keyed like the join's id hash) + the
pickled detectors. The HMAC is checked before unpickling, so bytes not written by a
driftline holding the key are refused (:class:`StateFormatError`), never unpickled.
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sketches.errors import StateFormatError

MAGIC = b"DLCD"
VERSION = 2
DETECTORS = ("adwin", "ddm", "page_hinkley", "none")


def new_detector(kind: str, regression: bool) -> Any:
    """A fresh River detector; DDM takes 0/1 errors only (classifiers)."""
    from river import drift

    if kind == "adwin":
        return drift.ADWIN()  # type: ignore[no-untyped-call]
    if kind == "page_hinkley":
        return drift.PageHinkley()
    if kind == "ddm":
        if regression:
            raise ValueError("ddm watches 0/1 errors: use adwin or page_hinkley for regression")
        return drift.binary.DDM()
    raise ValueError(f"unknown detector {kind!r}; one of {', '.join(DETECTORS)}")


@dataclass
class DetectorState:
    """Per model: the detector of each version, the stream position, the detections."""

    position: str = "0-0"
    detectors: dict[str, Any] = field(default_factory=dict)
    seen: dict[str, int] = field(default_factory=dict)
    """version -> outcomes fed so far."""
    detections: dict[str, list[int]] = field(default_factory=dict)
    """version -> outcome counts at which the detector fired (latest few)."""
    last_detection_at: float | None = None
    last_n: int | None = 0
    """Number of the last outcome read (None: not known, the next one sets it)."""
    trimmed: int = 0
    """Outcomes the stream's cap removed before they were read."""

    def update(self, rows: Iterable[tuple[str, str, float, int | None]], kind: str,
               regression: bool, now: float) -> list[tuple[str, int]]:
        """Feed outcome rows ``(stream id, version, error, number)``; the (version, count)
        of each detection. A number more than one past the last counts the gap trimmed."""
        fired: list[tuple[str, int]] = []
        for sid, version, err, number in rows:
            if number is not None and self.last_n is not None and number > self.last_n + 1:
                self.trimmed += number - self.last_n - 1
            self.last_n = number  # lower than the last: the join's state began again
            det = self.detectors.get(version)
            if det is None:
                det = self.detectors[version] = new_detector(kind, regression)
            det.update(err)
            n = self.seen[version] = self.seen.get(version, 0) + 1
            if det.drift_detected:
                fired.append((version, n))
                self.detections[version] = [*self.detections.get(version, [])[-9:], n]
                self.last_detection_at = now
            self.position = sid
        return fired

    def held(self, now: float, hold_s: float) -> bool:
        return self.last_detection_at is not None and now - self.last_detection_at < hold_s

    def to_bytes(self, key: bytes) -> bytes:
        body = pickle.dumps((self.position, self.detectors, self.seen, self.detections,
                             self.last_detection_at, self.last_n, self.trimmed),
                            protocol=pickle.HIGHEST_PROTOCOL)
        mac = hmac.new(key, body, hashlib.sha256).digest()
        return MAGIC + bytes([VERSION]) + mac + body

    @classmethod
    def from_bytes(cls, data: bytes, key: bytes) -> DetectorState:
        if data[:4] != MAGIC or len(data) < 37:
            raise StateFormatError("not detector state")
        if data[4] not in (1, VERSION):
            raise StateFormatError(f"detector state version {data[4]} is not 1 or {VERSION}")
        mac, body = data[5:37], data[37:]
        if not hmac.compare_digest(mac, hmac.new(key, body, hashlib.sha256).digest()):
            raise StateFormatError("detector state fails its HMAC (another key, or tampered)")
        try:
            fields = pickle.loads(body)
            if data[4] == 1:
                fields = (*fields, None, 0)
            position, detectors, seen, detections, last, last_n, trimmed = fields
        except Exception as exc:  # authenticated, so only a River upgrade gets here
            raise StateFormatError(f"detector state unreadable: {exc}") from exc
        return cls(position, detectors, seen, detections, last, last_n, trimmed)
