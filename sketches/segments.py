"""Segments: drift per value of a segment column (a country, a channel), bounded.

A model declares segment columns (``segments = ["country"]``); each gets a *roster* of at
most K values — the K most frequent in the model's reference — and every event is also
counted in the window of its segment value, values outside the roster pooled as one
"other" segment. So memory, evaluation time and metric series grow with K, never with the
column's cardinality.

A segment's windows are stored like a model version's, under the version name
``<version>~<column>=<token>`` (:func:`segment_version`), where the token is the value
percent-encoded to ``[A-Za-z0-9._-]`` (or ``~`` for "other"): no stored key changes shape,
and compaction and roll-ups treat segments like versions. Pure: no Redis, no Kafka.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Final, cast

import numpy as np

from sketches.categorical import CategoricalProfile
from sketches.profile import DatasetProfile
from sketches.types import ColumnType

SEP: Final = "~"
OTHER: Final = "~"
"""The token of the pooled "other" segment (a real value's token never is ``~``)."""
OTHER_LABEL: Final = "other"
DEFAULT_TOP_K: Final = 10
_PLAIN = re.compile(r"[A-Za-z0-9._]")
_PARSE = re.compile(r"^(?P<version>[^~]*)~(?P<column>[^=]+)=(?P<token>.+)$")


def token(value: str) -> str:
    """``value`` with every byte outside ``[A-Za-z0-9._]`` written ``-XX`` (its UTF-8 in
    hex), so a token fits a version name and decodes back; ``""`` is ``-``."""
    if not value:
        return "-"
    return "".join(ch if _PLAIN.match(ch) else "".join(f"-{b:02X}" for b in ch.encode())
                   for ch in value)


def value_of(tok: str) -> str:
    """The value a :func:`token` stands for (``other`` for the pooled segment)."""
    if tok == OTHER:
        return OTHER_LABEL
    if tok == "-":
        return ""
    return re.sub(r"(?:-[0-9A-F]{2})+",
                  lambda m: bytes.fromhex(m.group().replace("-", "")).decode("utf-8", "replace"),
                  tok)


def segment_version(version: str, column: str, tok: str) -> str:
    return f"{version}{SEP}{column}={tok}"


def parse(version_key: str) -> tuple[str, str, str] | None:
    """(version, column, token) of a segment's version name; None for a plain version."""
    m = _PARSE.match(version_key)
    return None if m is None else (m["version"], m["column"], m["token"])


def suffix(column: str, tok: str) -> str:
    """The alert id suffix of a segment, ``@country=DE`` (DESIGN.md §1)."""
    return f"@{column}={value_of(tok)}"


def roster(profile: DatasetProfile, column: str, k: int = DEFAULT_TOP_K) -> frozenset[str]:
    """The ``k`` most frequent values of a categorical ``column`` (empty if there is none)."""
    col = profile.columns.get(column)
    if not isinstance(col, CategoricalProfile):
        return frozenset()
    listed = col.listed()
    listed.sort(key=lambda v: (-col.estimate(v), v))
    return frozenset(listed[:k])


def segment_of(value: object, members: frozenset[str]) -> str:
    """The token of an event's segment value (``~`` when outside the roster)."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = value
    else:
        return OTHER
    return token(text) if text in members else OTHER


def split_rows(values: Iterable[object], members: frozenset[str]) -> dict[str, np.ndarray]:
    """Row indices per segment token (for profiling a reference file by segment)."""
    tokens = [segment_of(v, members) for v in values]
    out: dict[str, list[int]] = {}
    for i, t in enumerate(tokens):
        out.setdefault(t, []).append(i)
    return {t: np.asarray(ix, dtype=np.int64) for t, ix in out.items()}


def segment_profiles(batches: Iterable[Mapping[str, object]],
                     rosters: Mapping[str, frozenset[str]],
                     types: Mapping[str, ColumnType] | None = None,
                     ) -> dict[str, dict[str, DatasetProfile]]:
    """column -> token -> the profile of that segment's rows (reference building)."""
    out: dict[str, dict[str, DatasetProfile]] = {c: {} for c in rosters}
    for batch in batches:
        cols = {name: _to_list(v) for name, v in batch.items()}
        for column, members in rosters.items():
            if column not in cols:
                continue
            for tok, rows in split_rows(cols[column], members).items():
                prof = out[column].get(tok)
                if prof is None:
                    prof = out[column][tok] = DatasetProfile(types=types)
                picked = {name: [vals[i] for i in rows] for name, vals in cols.items()}
                prof.update(picked, len(rows))
    return out


def _to_list(values: object) -> list[object]:
    if hasattr(values, "to_pylist"):
        return list(values.to_pylist())
    if isinstance(values, np.ndarray):
        return list(values.tolist())
    return list(cast(Iterable[object], values))
