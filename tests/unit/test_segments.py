"""sketches.segments: tokens, rosters, segment profiles; the processor's segment windows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.cli import main
from driftline.models import parse_catalog, with_rosters
from sketches import segments
from sketches.errors import ConfigError
from sketches.profile import DatasetProfile
from sketches.reference import Reference
from streams.core import PartitionSnapshot, Processor, Record
from streams.windows import LabelSpec, ModelCatalog, ModelSpec, WindowKey

T0 = 1_795_420_800_000


@given(st.text(max_size=40))
def test_tokens_fit_a_version_name_and_decode_back(value: str) -> None:
    tok = segments.token(value)
    assert tok and all(c.isascii() and (c.isalnum() or c in "._-") for c in tok)
    key = segments.segment_version("7", "country", tok)
    assert segments.parse(key) == ("7", "country", tok)
    assert WindowKey.decode(WindowKey("m", key, 5).encode()) == WindowKey("m", key, 5)
    if "\ud800" <= max(value, default="a") <= "\udfff":  # lone surrogates: not UTF-8
        return
    assert segments.value_of(tok) == value


def test_other_is_its_own_token_and_plain_versions_do_not_parse() -> None:
    assert segments.value_of(segments.OTHER) == "other"
    assert segments.token("~") != segments.OTHER
    assert segments.parse("7") is None
    assert segments.suffix("country", segments.token("DE")) == "@country=DE"


def test_roster_is_the_top_k_of_the_reference_column() -> None:
    prof = DatasetProfile()
    values = ["DE"] * 50 + ["FR"] * 30 + ["IT"] * 20 + [f"x{i}" for i in range(10)]
    prof.update({"country": values}, len(values))
    assert segments.roster(prof, "country", 3) == frozenset({"DE", "FR", "IT"})
    assert segments.roster(prof, "missing", 3) == frozenset()


def test_segment_profiles_split_rows_and_pool_the_rest() -> None:
    batch = {"country": ["DE", "FR", "zz", None, "DE"], "x": [1.0, 2.0, 3.0, 4.0, 5.0]}
    out = segments.segment_profiles([batch], {"country": frozenset({"DE", "FR"})})
    assert {t: p.rows for t, p in out["country"].items()} == {"DE": 2, "FR": 1, "~": 2}


def test_processor_adds_each_event_to_its_segment_window_and_counts_it_once() -> None:
    spec = ModelSpec("m", 60_000, 0, segments={"country": frozenset({"DE"})})
    proc = Processor(ModelCatalog({"m": spec}, accept_unknown=False))
    proc.assign(PartitionSnapshot(0, 1))
    recs = [Record(0, i, 1000, json.dumps({"model": "m", "ts": 1.0, "prediction": 0.1,
                                            "features": {"country": c, "x": i}}).encode())
            for i, c in enumerate(["DE", "FR", "DE", 7])]
    assert proc.process(recs) == []
    cp = proc.checkpoint(0)
    assert cp is not None and cp.counters.ok == {"m": 4}
    rows = {k.version: DatasetProfile.from_bytes(b).rows for k, b in cp.windows.items()}
    assert rows == {"default": 4, "default~country=DE": 2, "default~country=~": 2}


def test_profile_segments_flag_stores_the_top_k_segment_profiles(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    n = 5000
    country = rng.choice(["DE", "FR", "IT", "ES", "PL"], n, p=[0.4, 0.3, 0.15, 0.1, 0.05])
    pq.write_table(pa.table({"country": country, "x": rng.normal(size=n)}),
                   tmp_path / "train.parquet")
    out = tmp_path / "ref.bin"
    assert main(["profile", str(tmp_path / "train.parquet"), "--out", str(out),
                 "--segments", "country", "--segment-top-k", "3"]) == 0
    ref = Reference.from_bytes(out.read_bytes())
    rows = {t: p.rows for t, p in ref.segments["country"].items()}
    assert rows == {"DE": int((country == "DE").sum()), "FR": int((country == "FR").sum()),
                    "IT": int((country == "IT").sum()),
                    "~": int(np.isin(country, ["ES", "PL"]).sum())}
    assert ref.segment("country", "DE") is not None and ref.segment("country", "PL") is None
    assert main(["profile", str(tmp_path / "train.parquet"), "--out", str(out),
                 "--segments", "x"]) == 2  # not categorical: a clear error


def test_models_file_segments_and_rosters_from_the_reference() -> None:
    catalog = parse_catalog({"models": {
        "a": {"segments": ["country"], "segment_top_k": 2},
        "b": {"segments": {"channel": ["web", "app"]}},
    }})
    assert catalog.models["a"].segments == {"country": frozenset()}
    assert catalog.models["b"].segments == {"channel": frozenset({"web", "app"})}
    prof = DatasetProfile()
    values = ["DE"] * 5 + ["FR"] * 3 + ["IT"]
    prof.update({"country": values}, len(values))
    ref = Reference(prof, model="a", version="default", created="")
    filled = with_rosters(catalog, lambda m: ref if m == "a" else None)
    assert filled.models["a"].segments == {"country": frozenset({"DE", "FR"})}
    assert filled.models["b"].segments == {"channel": frozenset({"web", "app"})}
    with pytest.raises(ConfigError):
        parse_catalog({"models": {"a": {"segments": ["bad=name"]}}})


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["DE", "FR", "IT", "", "x|y", None, 3, True]),
                          st.sampled_from(["7", "8"]),
                          st.one_of(st.none(), st.text(min_size=1, max_size=8)),
                          st.integers(0, 3 * 60_000 - 1),
                          st.floats(-1e6, 1e6)),
                max_size=60),
       st.integers(1, 60))
def test_whole_path_with_segments_and_the_join(events: list[tuple[object, str, str | None,
                                                                  int, float]],
                                               cut: int) -> None:
    """Generated events of a segmented, labelled model through process -> checkpoint ->
    bytes -> load (a crash at ``cut``, the rest replayed) -> merge: each segment column's
    windows hold exactly the rows of their version's window, every accepted event with an
    id is handed to the join once, naming its version first, then one segment per column."""
    spec = ModelSpec("m", 60_000, 3 * 60_000, labels=LabelSpec(window_ms=60_000),
                     segments={"country": frozenset({"DE", "FR"})})
    catalog = ModelCatalog({"m": spec}, accept_unknown=False)
    recs = [Record(0, i, T0 + ts, json.dumps(
        {"model": "m", "version": v, "ts": (T0 + ts) / 1000, "prediction": 0.4,
         **({"id": ident} if ident is not None else {}),
         "features": {"country": c, "x": x}}).encode())
        for i, (c, v, ident, ts, x) in enumerate(events)]
    stored: dict[WindowKey, bytes] = {}
    joins = []
    snap = PartitionSnapshot(0, 1)
    for part in (recs[:cut], recs):  # a crash after the first part, then a replay of all
        proc = Processor(catalog)
        proc.assign(snap)
        proc.process(part)
        cp = proc.checkpoint(0)
        if cp is None:
            continue
        stored.update(cp.windows)
        joins += cp.joins
        snap = PartitionSnapshot(0, 1, cp.applied_offset, cp.watermark_ms, cp.counters,
                                 stored, cp.watermarks, cp.generation + 1)
    rows: dict[tuple[str, int], int] = {}
    seg_rows: dict[tuple[str, int], int] = {}
    for key, blob in stored.items():
        n = DatasetProfile.from_bytes(blob).rows
        parsed = segments.parse(key.version)
        target = seg_rows if parsed else rows
        base = parsed[0] if parsed else key.version
        target[(base, key.start_ms)] = target.get((base, key.start_ms), 0) + n
    assert seg_rows == {k: v for k, v in rows.items() if v}
    assert sum(rows.values()) == snap.counters.ok.get("m", 0)
    with_id = [r for r, e in zip(recs, events, strict=True) if e[2] is not None]
    assert [j.offset for j in joins] == [r.offset for r in with_id][:len(joins)]
    assert len(joins) == len({j.offset for j in joins})  # none handed over twice
    for j in joins:
        version, *segs = j.version.split(",")
        assert version in ("7", "8") and len(segs) == 1
        assert segments.parse(segs[0])[:2] == (version, "country")  # type: ignore[index]
