"""The Redis keys of alert state: the one place that spells them.

Per model, under the deployment's key prefix ``P``::

    P:alerts:<model>:tracks    hash  alert id -> Track bytes (alerts.machine)
    P:alerts:<model>:result    string  ModelResult bytes (alerts.results)

Readers look results up by model name (``MGET``), never by scanning the keyspace: the
models to read come from where the evaluator takes them (the models file and the
reference index).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AlertKeys:
    prefix: str

    def tracks(self, model: str) -> str:
        return f"{self.prefix}:alerts:{model}:tracks"

    def result(self, model: str) -> str:
        return f"{self.prefix}:alerts:{model}:result"
