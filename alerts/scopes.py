"""What one model's evaluation compares: its *scopes*.

Model versions are never merged (a change in the traffic split between two versions
would otherwise look like drift):

- one version with enough rows (``min_count``) in the measurement window → one scope,
  the model itself (alert ids ``model/column/metric``, as always);
- several → one scope per version, each compared with its own reference (the store falls
  back to the model's default reference), ids suffixed ``@version=<v>``;
- ``compare_versions = ["7", "8"]`` in the models file adds a canary / shadow scope:
  version 8's window compared with version 7's window *of the same period*, ids suffixed
  ``@version=8@vs=7`` and alerts carrying ``compare_to: "7"``.

Pure: profiles and references in, drift reports and checks out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from alerts.outcome import Check, latency, range_checks, report_checks
from sketches.drift import DriftReport, compare_profiles
from sketches.profile import DatasetProfile
from sketches.reference import Reference

if TYPE_CHECKING:
    from alerts.evaluator import Measurement, ModelRules


@dataclass(frozen=True)
class Scope:
    suffix: str
    """Appended to the alert ids of the scope ("" for the model itself)."""
    version: str
    compare_to: str | None = None
    """Canary scopes: the baseline version (compared with instead of the reference)."""


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


def version_rows(m: Measurement) -> dict[str, int]:
    """Rows per version in the measurement window (its traffic split)."""
    return {v: p.rows for v, p in m.versions.items()}


def scopes_of(cfg: ModelRules, m: Measurement) -> list[Scope]:
    """The scopes of ``m``; the first is the primary one (the most rows)."""
    if len(m.versions) == 1:  # not built just to count its rows (a source may build lazily)
        return [Scope("", next(iter(m.versions))), *_canary(cfg, m)]
    rows = version_rows(m)
    ordered = sorted(rows, key=lambda v: (-rows[v], v))
    present = [v for v in ordered if rows[v] >= cfg.rules.min_count]
    if len(present) <= 1:
        return [Scope("", present[0] if present else ordered[0]), *_canary(cfg, m)]
    return [*(Scope(f"@version={v}", v) for v in present), *_canary(cfg, m)]


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
    current = m.versions[scope.version]
    if scope.compare_to is not None:
        base = m.versions[scope.compare_to]
        reference: Reference | None = Reference(
            base, model=cfg.model, version=scope.compare_to, created="")
    else:
        reference = reference_of(scope.version)
    current = merge_typed([current], reference)
    report = None if reference is None else compare_profiles(reference, current, cfg.rules)
    checks: list[Check] = []
    if report is not None:
        checks = report_checks(report)
        if scope.compare_to is None:
            checks += range_checks(cfg, current)
    if m.incomplete:  # never compared as if whole: every alert holds its state
        checks = [dataclasses.replace(c, breached=None) for c in checks]
    checks = [dataclasses.replace(c, scope=scope.suffix, version=scope.version,
                                  compare_to=scope.compare_to) for c in checks]
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
