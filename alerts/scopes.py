"""What one model's evaluation compares: its *scopes*.

Model versions are never merged (a change in the traffic split between two versions
would otherwise look like drift):

- one version with enough rows (``min_count``) in the measurement window → one scope,
  the model itself (alert ids ``model/column/metric``, as always);
- several → one scope per version, each compared with its own reference (the store falls
  back to the model's default reference), ids suffixed ``@version=<v>``;
- ``compare_versions = ["7", "8"]`` in the models file adds a canary / shadow scope:
  version 8's window compared with version 7's window *of the same period*, ids suffixed
  ``@version=8@vs=7`` and alerts carrying ``compare_to: "7"``;
- segments (:mod:`sketches.segments`): each segment of each version scope, compared with
  the same segment of the reference, ids suffixed ``@country=DE`` (``@country=other`` for
  the pooled rest); in p-value mode the segment tests share alpha (Bonferroni), on top of
  the correction within each comparison.

Pure: profiles and references in, drift reports and checks out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from alerts.outcome import Check, latency, range_checks, report_checks, version_rows
from sketches import segments
from sketches.drift import DriftReport, compare_profiles
from sketches.profile import DatasetProfile
from sketches.reference import Reference

if TYPE_CHECKING:
    from alerts.evaluator import ModelRules
    from alerts.sources import Measurement


@dataclass(frozen=True)
class Scope:
    suffix: str
    """Appended to the alert ids of the scope ("" for the model itself)."""
    version: str
    compare_to: str | None = None
    """Canary scopes: the baseline version (compared with instead of the reference)."""
    key: str = ""
    """The measurement's version key holding the scope's windows ("": ``version``)."""
    segment: tuple[str, str] | None = None
    """Segment scopes: (column, token)."""

    @property
    def window_key(self) -> str:
        return self.key or self.version


@dataclass
class Compared:
    """One scope's comparison (kept while neither its inputs nor its reference change)."""

    scope: Scope
    reference: Reference | None
    report: DriftReport | None
    checks: list[Check]
    rows: int
    latency: dict[str, float]
    current: DatasetProfile | None = field(default=None, repr=False)
    """The merged profile, for estimates made from it (not kept in the cache)."""


def scopes_of(cfg: ModelRules, m: Measurement) -> list[Scope]:
    """The scopes of ``m``; the first is the primary one (the most rows)."""
    real = [v for v in m.versions if segments.SEP not in v]
    if len(real) == 1:  # not built just to count its rows (a source may build lazily)
        base = [Scope("", real[0])]
    else:
        rows = version_rows(m)
        ordered = sorted(rows, key=lambda v: (-rows[v], v))
        present = [v for v in ordered if rows[v] >= cfg.rules.min_count]
        base = ([Scope("", present[0] if present else ordered[0])] if len(present) <= 1
                else [Scope(f"@version={v}", v) for v in present])
    out = list(base)
    for scope in base:
        for key in m.versions:
            parsed = segments.parse(key)
            if parsed is not None and parsed[0] == scope.version:
                _, column, tok = parsed
                out.append(Scope(scope.suffix + segments.suffix(column, tok), scope.version,
                                 key=key, segment=(column, tok)))
    return out + _canary(cfg, m)


def _canary(cfg: ModelRules, m: Measurement) -> list[Scope]:
    if cfg.compare_versions is None:
        return []
    base, canary = cfg.compare_versions
    if base in m.versions and canary in m.versions:
        return [Scope(f"@version={canary}@vs={base}", canary, compare_to=base)]
    return []


def compare(cfg: ModelRules, m: Measurement, scope: Scope,
            reference_of: Callable[[str], Reference | None]) -> Compared:
    """Compare the scope's window with its reference (or, for a canary, with the baseline
    version's window of the same period)."""
    current = m.versions[scope.window_key]
    rules = cfg.rules
    if scope.segment is not None and rules.mode == "pvalue":
        tests = sum(1 for k in m.versions if segments.SEP in k)
        rules = dataclasses.replace(rules, alpha=rules.alpha / max(tests, 1))
    if scope.compare_to is not None:
        base = m.versions[scope.compare_to]
        reference: Reference | None = Reference(
            base, model=cfg.model, version=scope.compare_to, created="")
    else:
        reference = reference_of(scope.version)
    current = merge_typed([current], reference)
    report = None if reference is None else compare_profiles(reference, current, rules)
    seg = (None if scope.segment is None
           else (scope.segment[0], segments.value_of(scope.segment[1])))
    fields = {"scope": scope.suffix, "version": scope.version, "compare_to": scope.compare_to,
              "segment": seg}
    checks: list[Check] = []
    if report is not None:
        checks = report_checks(report, **fields)
        if scope.compare_to is None and scope.segment is None:
            checks += range_checks(cfg, current, **fields)
    if m.incomplete:  # never compared as if whole: every alert holds its state
        checks = [dataclasses.replace(c, breached=None) for c in checks]
    return Compared(scope, reference, report, checks, current.rows, latency(current), current)


def merge_typed(profiles: Iterable[DatasetProfile], reference: Reference | None
                ) -> DatasetProfile:
    """Merge window profiles into one typed by the reference, not by which window happened
    to come first: a column whose values changed type shows as ``type_mismatch``. One
    profile already so typed is returned itself, not copied (it is not changed)."""
    types = reference.profile.types_known() if reference else {}
    profiles = list(profiles)
    if len(profiles) == 1 and all(
            (col := profiles[0].columns.get(name)) is not None and col.column_type == t
            for name, t in types.items()):
        return profiles[0]
    current = DatasetProfile(types=types or None)
    for prof in profiles:
        current.merge(prof)
    return current


def superseded(ids: Iterable[str], current: set[str], multi: bool) -> list[str]:
    """Drift / quality alert ids of the *other* version mode (the model went from one
    version to several or back): they resolve rather than stay firing forever."""
    out = []
    for aid in ids:
        if aid in current or "/-/" in aid or "@vs=" in aid:
            continue
        if ("@version=" in aid) != multi:
            out.append(aid)
    return out


def split_id(aid: str) -> tuple[str, str, str]:
    """(column, metric, scope suffix) of an alert id ``model/column/metric<suffix>``."""
    _, column, rest = aid.split("/", 2)
    metric, at, suffix = rest.partition("@")
    return column, metric, at + suffix


__all__ = [
    "Compared",
    "Scope",
    "compare",
    "merge_typed",
    "scopes_of",
    "split_id",
    "superseded",
    "version_rows",
]
