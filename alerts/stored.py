"""Versioned bytes for the alert state kept in Redis: a magic + format version, then JSON.

Unreadable bytes (another magic, a newer format, corruption) raise ``StateFormatError``.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import msgspec

from sketches.errors import StateFormatError

T = TypeVar("T")


class StoredFormat(Generic[T]):
    def __init__(self, magic: bytes, kind: type[T], what: str) -> None:
        self.magic = magic
        self.what = what
        self._encoder = msgspec.json.Encoder()
        self._decoder = msgspec.json.Decoder(kind)

    def to_bytes(self, value: T) -> bytes:
        return self.magic + self._encoder.encode(value)

    def from_bytes(self, data: bytes) -> T:
        if not data.startswith(self.magic):
            raise StateFormatError(f"{self.what}: unknown magic or format version")
        try:
            return self._decoder.decode(data[len(self.magic):])
        except Exception as exc:  # any library error on bad bytes is a format error
            raise StateFormatError(f"{self.what}: corrupt ({exc})") from exc
