"""Reading a timestamp column of a data file as epoch milliseconds (``--timestamp-column``)."""

from __future__ import annotations

import datetime as dt
import logging
import math

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from sketches.errors import InputDataError

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
EPOCH_UNITS = ((1e11, "s", 1e3), (1e14, "ms", 1.0), (1e17, "us", 1e-3), (math.inf, "ns", 1e-6))


class TimestampReader:
    """Reads one column, batch by batch, as epoch milliseconds (float64, NaN = missing).

    Accepts Arrow timestamps (any unit; without a time zone they are taken as UTC) and
    dates, RFC 3339 / ISO 8601 strings (without an offset: UTC), and epoch numbers whose
    unit (s, ms, us, ns) is read from the first value's magnitude (:data:`EPOCH_UNITS`).
    Seconds are rounded to whole milliseconds as the stream rounds an event's ``ts``.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.unit: tuple[str, float] | None = None

    def read(self, arr: pa.Array | pa.ChunkedArray) -> FloatArray:
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        if pa.types.is_dictionary(arr.type):
            arr = arr.dictionary_decode()
        t = arr.type
        if pa.types.is_null(t):
            return np.full(len(arr), np.nan)
        if pa.types.is_timestamp(t):
            per_ms = {"s": 1, "ms": 1, "us": 1000, "ns": 1_000_000}[t.unit]
            ints = arr.cast(pa.int64())
            return _int_ms(ints, per_ms, 1000 if t.unit == "s" else 1)
        if pa.types.is_date32(t):
            return _int_ms(arr.cast(pa.int32()).cast(pa.int64()), 1, 86_400_000)
        if pa.types.is_date64(t):
            return _int_ms(arr.cast(pa.int64()), 1, 1)
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            return self._strings(arr)
        if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
            return self._numbers(arr)
        raise InputDataError(
            f"timestamp column {self.name!r} has type {t}: use Arrow timestamps, "
            "RFC 3339 strings or epoch numbers"
        )

    def _numbers(self, arr: pa.Array) -> FloatArray:
        t = arr.type
        if pa.types.is_integer(t):
            valid = np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
            raw = np.asarray(arr.cast(pa.int64()).fill_null(0).to_numpy(), dtype=np.int64)
            first = raw[valid][:1]
        else:
            vals = np.asarray(arr.cast(pa.float64()).to_numpy(zero_copy_only=False), np.float64)
            first = vals[np.isfinite(vals)][:1]
        if self.unit is None:
            if first.size == 0:
                return np.full(len(arr), np.nan)
            magnitude = abs(float(first[0]))
            name, factor = next((u, f) for top, u, f in EPOCH_UNITS if magnitude < top)
            self.unit = (name, factor)
            log.info("timestamp column %r: numbers read as epoch %s", self.name, name)
        name, factor = self.unit
        if pa.types.is_integer(t):
            per_ms = {"s": 1, "ms": 1, "us": 1000, "ns": 1_000_000}[name]
            return _units_ms(raw, valid, per_ms, 1000 if name == "s" else 1)
        with np.errstate(invalid="ignore", over="ignore"):
            out = np.round(vals * factor)
        out[~np.isfinite(out)] = np.nan
        return out

    def _strings(self, arr: pa.Array) -> FloatArray:
        try:  # fast path: every value has a zone offset
            ints = arr.cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64())
            return _int_ms(ints, 1_000_000, 1)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
        out = np.full(len(arr), np.nan)
        for i, value in enumerate(arr.to_pylist()):
            if value is None or not value.strip():
                continue
            try:
                t = dt.datetime.fromisoformat(value.strip())
            except ValueError:
                raise InputDataError(
                    f"timestamp column {self.name!r}: {value[:64]!r} is not an RFC 3339 time"
                ) from None
            if t.tzinfo is None:
                t = t.replace(tzinfo=dt.UTC)
            out[i] = round(t.timestamp() * 1000)
        return out


def _int_ms(ints: pa.Array, per_ms: int, ms_per: int) -> FloatArray:
    """int64 epoch units -> ms as float64 (NaN where null)."""
    valid = np.asarray(ints.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    return _units_ms(np.asarray(ints.fill_null(0).to_numpy(), dtype=np.int64), valid,
                     per_ms, ms_per)


def _units_ms(v: npt.NDArray[np.int64], valid: npt.NDArray[np.bool_], per_ms: int,
              ms_per: int) -> FloatArray:
    """``v * ms_per``, or ``v / per_ms`` rounded half up — in integers, so nanoseconds
    lose nothing before the division."""
    if ms_per != 1:
        v = v * ms_per
    elif per_ms != 1:
        v = (v + per_ms // 2) // per_ms
    out = v.astype(np.float64)
    out[~valid] = np.nan
    return out
