"""Versioned bytes for the alert state kept in Redis, in the framing of every stored state.

The layout is :mod:`sketches._codec`'s (4-byte magic, u16 format version, length, CRC-32,
msgpack body); unreadable bytes (another magic, a newer format, truncation, corruption)
raise ``StateFormatError``.

Format 1 (driftline before the shared framing) was the magic, one version byte ``\\x01``
and a JSON body. It is still read, so the alert tracks and results an existing deployment
stored stay readable across the upgrade; the next evaluation rewrites them in the current
format. The two cannot be confused: a current header's version is a big-endian u16, so the
byte after the magic is ``\\x00``.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import msgspec

from sketches._codec import pack, unpack
from sketches.errors import StateFormatError

T = TypeVar("T")

LEGACY_JSON_VERSION = b"\x01"


class StoredFormat(Generic[T]):
    def __init__(self, magic: bytes, version: int, kind: type[T], what: str) -> None:
        if len(magic) != 4 or version < 2:
            raise ValueError("a 4-byte magic and a format version >= 2 (1 was JSON)")
        self.magic = magic
        self.version = version
        self.what = what
        self._kind = kind
        self._legacy = msgspec.json.Decoder(kind)

    def to_bytes(self, value: T) -> bytes:
        return pack(self.magic, self.version, value)

    def from_bytes(self, data: bytes) -> T:
        legacy = self.magic + LEGACY_JSON_VERSION
        if isinstance(data, bytes) and data.startswith(legacy):
            try:
                return self._legacy.decode(data[len(legacy):])
            except Exception as exc:  # any library error on bad bytes is a format error
                raise StateFormatError(f"{self.what} (format 1): corrupt ({exc})") from exc
        try:
            return unpack(data, self.magic, self.version, self._kind)
        except StateFormatError as exc:
            raise StateFormatError(f"{self.what}: {exc}") from exc
