"""The Redis keys of alert state: the one place that spells them.

Per model, under the deployment's key prefix ``P`` (one hash tag per model, so the fenced
write of :mod:`alerts.shards` touches one Redis Cluster slot)::

    P:alerts:{P:<model>}:tracks    hash  alert id -> Track bytes (alerts.machine)
    P:alerts:{P:<model>}:result    string  ModelResult bytes (alerts.results)
    P:alerts:{P:<model>}:fence     string  token of the last evaluator term that wrote
    P:alerts:{P:<model>}:detector  string  the change detectors on the error stream and
                                           their position in it (alerts.detectors)

State written before the tags (``P:alerts:<model>:tracks``) is read as a fallback, so an
upgrade neither re-fires nor forgets firing alerts.

Readers look results up by model name (``MGET``), never by scanning the keyspace: the
models to read come from where the evaluator takes them (the models file and the
reference index).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AlertKeys:
    prefix: str

    def _base(self, model: str) -> str:
        return f"{self.prefix}:alerts:{{{self.prefix}:{model}}}"

    def tracks(self, model: str) -> str:
        return f"{self._base(model)}:tracks"

    def result(self, model: str) -> str:
        return f"{self._base(model)}:result"

    def fence(self, model: str) -> str:
        return f"{self._base(model)}:fence"

    def detector(self, model: str) -> str:
        return f"{self._base(model)}:detector"

    def legacy_tracks(self, model: str) -> str:
        return f"{self.prefix}:alerts:{model}:tracks"

    def legacy_result(self, model: str) -> str:
        return f"{self.prefix}:alerts:{model}:result"
